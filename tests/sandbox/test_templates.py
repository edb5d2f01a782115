"""Template digests: what they cover, their cache, and the errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ise_es.errors import TemplateError
from ise_es.sandbox import templates
from ise_es.sandbox.templates import load_template


def make_tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "b.bin").write_bytes(bytes(range(256)))
    (root / "link").symlink_to("a.txt")
    return root


def digest(path: Path, cache: Path) -> str:
    return load_template(str(path), cache_dir=cache, refresh=True).digest


def test_digest_is_stable_and_independent_of_location_and_times(tmp_path: Path) -> None:
    a = make_tree(tmp_path / "one")
    b = make_tree(tmp_path / "two")
    os.utime(b / "a.txt", (1, 1))
    assert digest(a, tmp_path / "c") == digest(b, tmp_path / "c")
    assert digest(a, tmp_path / "c").startswith("sha256:")


@pytest.mark.parametrize(
    "change",
    [
        lambda r: (r / "a.txt").write_text("alphA\n"),
        lambda r: os.chmod(r / "a.txt", 0o600),
        lambda r: ((r / "link").unlink(), (r / "link").symlink_to("sub")),
        lambda r: (r / "sub" / "new").write_text(""),
        lambda r: (r / "a.txt").rename(r / "a2.txt"),
        lambda r: (r / "emptydir").mkdir(),
    ],
    ids=["content", "mode", "symlink-target", "new-file", "rename", "new-dir"],
)
def test_digest_covers(tmp_path: Path, change: object) -> None:
    root = make_tree(tmp_path / "t")
    before = digest(root, tmp_path / "c")
    change(root)  # type: ignore[operator]
    assert digest(root, tmp_path / "c") != before


def test_unchanged_files_are_not_rehashed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_tree(tmp_path / "t")
    cache = tmp_path / "c"
    digest(root, cache)
    hashed: list[str] = []
    real = templates.file_sha256
    monkeypatch.setattr(templates, "file_sha256", lambda p: hashed.append(str(p)) or real(p))
    digest(root, cache)
    assert hashed == []
    (root / "a.txt").write_text("changed\n")
    digest(root, cache)
    assert hashed == [str(root / "a.txt")]


def test_loaded_once_per_process(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    first = load_template(str(root), cache_dir=tmp_path / "c", refresh=True)
    (root / "a.txt").write_text("edited behind our back\n")
    assert load_template(str(root), cache_dir=tmp_path / "c").digest == first.digest
    assert load_template(str(root), cache_dir=tmp_path / "c", refresh=True).digest != first.digest


def test_expected_digest_mismatch_names_the_template(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "mytemplate")
    with pytest.raises(TemplateError, match="mytemplate"):
        load_template(str(root), expected_digest="sha256:" + "0" * 64, cache_dir=tmp_path)


def test_unknown_template_lists_the_known_ones() -> None:
    with pytest.raises(TemplateError, match=r"unknown template 'nope'.*empty.*notes.*pyproject"):
        load_template("nope")


def test_special_files_refused(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    os.mkfifo(root / "fifo")
    with pytest.raises(TemplateError, match="fifo"):
        load_template(str(root), cache_dir=tmp_path / "c", refresh=True)


def test_manifest_describes_entries(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    m = load_template(str(root), cache_dir=tmp_path / "c", refresh=True).manifest
    assert set(m) == {"a.txt", "sub", "sub/b.bin", "link"}
    assert m["link"].kind == "symlink" and m["link"].link_target == "a.txt"
    assert m["sub/b.bin"].size == 256 and m["sub"].kind == "dir"


def test_shipped_templates_load() -> None:
    for name in ("empty", "notes", "pyproject"):
        assert load_template(name).digest.startswith("sha256:")
    assert "memory/2026-03-10.md" in load_template("notes").manifest
