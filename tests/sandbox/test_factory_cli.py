"""open_sandbox's contract and the `ise-es sandbox` commands."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from cli import main
from ise_es.errors import ConfigError, TemplateError
from ise_es.sandbox import DEFAULT_ENVIRONMENT, load_template, open_sandbox


def test_unknown_backend() -> None:
    with pytest.raises(ConfigError, match="unknown sandbox backend 'vm'"):
        open_sandbox("vm", "empty", blobs=None)


def test_resolved_template_with_other_digest_refused() -> None:
    tpl = load_template("notes")
    with pytest.raises(TemplateError, match="notes"):
        open_sandbox("local", tpl, blobs=None, expected_digest="sha256:" + "1" * 64)


def test_environment_defaults_are_pinned_and_overridable() -> None:
    with open_sandbox("local", "empty", blobs=None, environment={"TZ": "Asia/Tokyo"}) as sb:
        assert sb.environment["TZ"] == "Asia/Tokyo"
        assert sb.environment["SOURCE_DATE_EPOCH"] == DEFAULT_ENVIRONMENT["SOURCE_DATE_EPOCH"]
        assert sb.exec("date -d @0 +%H").stdout == b"09\n"


def test_cli_template_digest() -> None:
    r = CliRunner().invoke(main, ["sandbox", "template-digest", "pyproject"])
    assert r.exit_code == 0 and r.output == load_template("pyproject").digest + "\n"
    r = CliRunner().invoke(main, ["sandbox", "template-digest", "nope"])
    assert r.exit_code == 2 and "unknown template 'nope'" in r.output  # bad input, as everywhere


@pytest.mark.docker
def test_cli_build_image_is_cached(docker_client: Any) -> None:
    r = CliRunner().invoke(main, ["sandbox", "build-image"])
    assert r.exit_code == 0, r.output
    assert "exists; not rebuilding" in r.output
    assert docker_client.images.get("ise-es-sandbox:bookworm").id in r.output
