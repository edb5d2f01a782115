"""`ise-es sandbox build-image|template-digest`: the docker backend's image and the workspace
templates' digests."""

from __future__ import annotations

from pathlib import Path

import click

from ise_es.commands.common import reports_errors
from ise_es.commands.options import templates_dir_option

__all__ = ["sandbox_group"]


@click.group("sandbox")
def sandbox_group() -> None:
    """Sandbox images and workspace templates.

    \b
    Example:
        ise-es sandbox build-image
        ise-es sandbox template-digest pyproject
    """


@sandbox_group.command("build-image")
@click.option("--force", is_flag=True, help="Rebuild even when the image exists.")
@click.option("--mirror", default=None, help="Debian mirror URL (default: the host's apt one).")
@reports_errors
def sandbox_build_image(force: bool, mirror: str | None) -> None:
    """Build the docker backend's Debian bookworm image (debootstrap + docker import).

    Starts `dockerd --bridge=none` when no engine answers. Skipped when the image exists.

    \b
    Example:
        ise-es sandbox build-image
    """
    from ise_es.sandbox.dockerimage import build_base_image, ensure_dockerd

    client = ensure_dockerd()
    image_id = build_base_image(client, force=force, mirror=mirror, progress=click.echo)
    click.echo(image_id)


@sandbox_group.command("template-digest")
@click.argument("template")
@templates_dir_option()
@reports_errors
def sandbox_template_digest(template: str, templates_dir: Path | None) -> None:
    """Print a workspace template's content digest (what sessions record).

    TEMPLATE is a name (looked up as `record` and `replay` do), a path or `empty`.

    \b
    Example:
        ise-es sandbox template-digest pyproject
        ise-es sandbox template-digest mytpl --templates-dir ~/templates
    """
    from ise_es.sandbox.templates import load_template

    click.echo(load_template(template, templates_dir=templates_dir).digest)
