"""Template names resolve where users keep them, the same way in every command.

Order: `--templates-dir` (or `templates_dir` in the config file), else `./fixtures/templates`
of the current directory, then the shipped templates (package data).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from ise_es.errors import TemplateError
from ise_es.events import SessionStarted
from ise_es.sandbox import templates
from ise_es.sandbox.templates import load_template, shipped_templates_dir
from ise_es.store.sql import open_store

SHIPPED_DIGESTS = {
    # Recorded in every session made from these templates: moving the files into the package
    # must not change them (nor may a wheel install, see tests/test_wheel_install.py).
    "pyproject": "sha256:5a71889d77b992c1628cd7783d5212b41167e7d5665eab71e109187be033a20c",
    "notes": "sha256:4dba3e4a5a5b2147f6ceb24e36c9257f35b9638d6521733c2f5f3ebeb6a5b761",
}

SCENARIO = (
    "intent: read the marker\ntemplate: mytpl\nturns:\n  - user: go\n    agent:\n"
    "      - tool_calls:\n          - exec: {command: cat marker.txt}\n      - text: done\n"
)


def user_template(root: Path, text: str = "mine\n") -> Path:
    path = root / "mytpl"
    path.mkdir(parents=True)
    (path / "marker.txt").write_text(text)
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize("name", sorted(SHIPPED_DIGESTS))
def test_shipped_templates_keep_their_digests(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./fixtures/templates here: the shipped ones answer
    assert load_template(name, refresh=True).digest == SHIPPED_DIGESTS[name]
    assert run("sandbox", "template-digest", name) == (0, SHIPPED_DIGESTS[name] + "\n")


def test_record_replay_and_digest_find_templates_in_the_current_directory(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    tpl = user_template(tmp_path / "fixtures" / "templates")
    (tmp_path / "s.yaml").write_text(SCENARIO)
    code, out = run("record", "--scenario", "s.yaml", "--db", sqlite_url)
    assert code == 0, out
    with open_store(sqlite_url) as store:
        [stream] = store.streams("session-")
        started = next(iter(store.read_stream(stream.stream_id))).data
    assert isinstance(started, SessionStarted)
    expected = load_template(str(tpl)).digest
    assert (started.template, started.template_digest) == ("mytpl", expected)
    assert run("sandbox", "template-digest", "mytpl") == (0, expected + "\n")
    sid = stream.stream_id.removeprefix("session-")
    result = CliRunner().invoke(main, ["replay", sid, "--json", "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "reproduced"


def test_templates_dir_flag_and_config_file(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    elsewhere = tmp_path / "kept" / "templates"
    tpl = user_template(elsewhere)
    digest = load_template(str(tpl)).digest
    assert run("sandbox", "template-digest", "mytpl")[0] == 2, "not in ./fixtures/templates"
    assert run("sandbox", "template-digest", "mytpl", "--templates-dir", str(elsewhere)) == (
        0,
        digest + "\n",
    )
    (tmp_path / "s.yaml").write_text(SCENARIO)
    config = tmp_path / "ise-es.toml"
    config.write_text(f'[record]\ntemplates_dir = "{elsewhere}"\n')
    code, out = run("--config", str(config), "record", "--scenario", "s.yaml", "--db", sqlite_url)
    assert code == 0, out
    with open_store(sqlite_url) as store:
        [stream] = store.streams("session-")
        started = next(iter(store.read_stream(stream.stream_id))).data
    assert isinstance(started, SessionStarted) and started.template_digest == digest


def test_a_user_template_shadows_a_shipped_one_of_the_same_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "fixtures" / "templates" / "notes"
    shutil.copytree(shipped_templates_dir() / "notes", mine)
    (mine / "todo.md").write_text("changed\n")
    tpl = load_template("notes", refresh=True)
    assert tpl.path == str(mine.resolve()) and tpl.digest != SHIPPED_DIGESTS["notes"]


def test_unknown_template_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TemplateError) as e:
        load_template("mytpl")
    message = str(e.value)
    assert str(tmp_path / "fixtures" / "templates") in message
    assert str(shipped_templates_dir()) in message
    assert "notes" in message and "pyproject" in message and "--templates-dir" in message


def test_bytecode_pip_left_in_a_shipped_template_is_not_part_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip byte-compiles a wheel's .py files, templates included: the copy sandboxes start
    from leaves the __pycache__ out, and an edited template gets a fresh copy."""
    shipped = tmp_path / "site" / "templates"
    shutil.copytree(shipped_templates_dir() / "pyproject", shipped / "pyproject")
    compiled = shipped / "pyproject" / "src" / "mathkit" / "__pycache__"
    compiled.mkdir()
    (compiled / "text.cpython-311.pyc").write_bytes(b"\x00compiled")
    monkeypatch.setattr(templates, "shipped_templates_dir", lambda: shipped)
    monkeypatch.setattr(templates, "_clean_memo", {})
    monkeypatch.chdir(tmp_path)
    cache = tmp_path / "cache"
    tpl = load_template("pyproject", cache_dir=cache, refresh=True)
    assert tpl.digest == SHIPPED_DIGESTS["pyproject"]
    assert tpl.path is not None and Path(tpl.path).is_relative_to(cache)
    assert not list(Path(tpl.path).rglob("__pycache__"))

    (shipped / "pyproject" / "README.md").write_text("edited\n")
    monkeypatch.setattr(templates, "_clean_memo", {})
    edited = load_template("pyproject", cache_dir=cache, refresh=True)
    assert edited.path != tpl.path and edited.digest != SHIPPED_DIGESTS["pyproject"]
