"""The `--web*` options: one list, the same meaning from flags and from the settings file, and
errors that say what to do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from cli import main
from ise_es.commands.options import WEB_OPTION_NAMES, apply, web_options, web_settings
from ise_es.errors import ConfigError
from ise_es.web import WebLimits, WebSettings


@click.command()
@apply(web_options())
def probe(**options: Any) -> None:
    """Echo the WebSettings the options build."""
    settings = web_settings(options, db_url="postgresql://u:p@db.test/c", environ={"K": "key"})
    click.echo(repr((settings.mode, settings.allow, settings.deny, settings.ports)))
    click.echo(repr((settings.search, settings.search_url, settings.search_key == "key")))
    click.echo(repr(settings.limits))
    assert not options, f"left over: {options}"


def run(*args: str, default_map: dict[str, Any] | None = None) -> str:
    result = CliRunner().invoke(probe, list(args), default_map=default_map)
    assert result.exit_code == 0, result.output
    return result.output


def test_defaults_are_the_fixture_web_and_the_library_limits() -> None:
    out = run()
    assert "('fixture', (), (), (80, 443))" in out
    assert repr(WebLimits()) in out
    assert set(WEB_OPTION_NAMES) == {p.name for p in probe.params}


def test_flags_and_the_settings_file_mean_the_same() -> None:
    flags = run(
        "--web", "live", "--web-allow", "127.0.0.1:8080", "--web-allow", "*.corp.example",
        "--web-deny", "10.9.0.0/16", "--web-port", "80", "--web-port", "8443",
        "--web-search", "brave", "--web-search-key-env", "K", "--web-fetch-timeout", "5",
    )  # fmt: skip
    from_file = run(
        default_map={
            "web": "live",
            "web_allow": ["127.0.0.1:8080", "*.corp.example"],
            "web_deny": ["10.9.0.0/16"],
            "web_port": [80, 8443],
            "web_search": "brave",
            "web_search_key_env": "K",
            "web_fetch_timeout": 5,
        }
    )
    assert flags == from_file
    assert "('live', ('127.0.0.1:8080', '*.corp.example'), ('10.9.0.0/16',), (80, 8443))" in flags
    assert "('brave', None, True)" in flags  # the endpoint defaults in WebSettings.endpoint()


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"egress entry 'exa mple'"):
        web_settings({"web": "live", "web_allow": ("exa mple",)}, db_url=None, environ={})
    with pytest.raises(ConfigError, match=r"needs an API key in \$SERPER_API_KEY"):
        web_settings({"web": "live", "web_search": "serper"}, db_url=None, environ={})
    # Fixture runs never need the key.
    settings = web_settings({"web": "fixture", "web_search": "serper"}, db_url=None, environ={})
    assert settings.search_key is None


def test_record_refuses_a_missing_key_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["record", "--scenario", "shipped", "--db", f"sqlite:///{tmp_path}/x.db",
         "--web", "live", "--web-search", "serper"],
        env={"SERPER_API_KEY": ""},
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        "Error: --web-search serper needs an API key in $SERPER_API_KEY (set it, or name "
        "another variable with --web-search-key-env)"
    )


def test_the_recorded_spec_holds_no_key_and_no_store_url() -> None:
    settings = WebSettings(
        mode="live",
        search="serper",
        search_key="sk-secret-123",
        store_url="postgresql://ise:pw-secret@db.test/corpus",
    )
    import msgspec

    recorded = msgspec.json.encode(settings.spec()).decode()
    assert "sk-secret" not in recorded and "pw-secret" not in recorded
    assert settings.spec().search_url == "https://google.serper.dev/search"
