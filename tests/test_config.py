"""Settings precedence: flags > environment > config file > defaults."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from cli import main


def run(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, args, env=env or {})
    return result.exit_code, result.output


def test_config_file_sets_the_db_and_flags_and_environment_override_it(tmp_path: Path) -> None:
    from_file, from_env, from_flag = (
        f"sqlite:///{tmp_path / n}.db" for n in ("file", "env", "flag")
    )
    config = tmp_path / "ise-es.toml"
    config.write_text(f'db = "{from_file}"\n[record]\nworkers = 3\n[record.agent]\nmodel = "m"\n')
    for url in (from_file, from_env, from_flag):
        assert run(["db", "upgrade", "--db", url])[0] == 0
    # `db current` prints the revision of whichever database it opened; an empty one says none.
    Path(tmp_path / "env.db").unlink()
    code, out = run(["--config", str(config), "db", "current"])
    assert code == 0 and out.startswith("0")
    code, out = run(["--config", str(config), "db", "current"], env={"ISE_ES_DB": from_env})
    assert out.startswith("none"), "the environment beats the file"
    code, out = run(
        ["--config", str(config), "db", "current", "--db", from_flag], env={"ISE_ES_DB": from_env}
    )
    assert out.startswith("0"), "the flag beats the environment"


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[record]\nwokers = 3\n")
    code, out = run(["--config", str(config), "sessions", "list"])
    assert code == 2 and f"{config}: [record] has no option 'wokers'" in out


def test_broken_toml_is_one_line_naming_the_file(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("[record\n")
    code, out = run(["--config", str(config), "sessions", "list"])
    assert code == 2 and f"{config}: not valid TOML" in out
