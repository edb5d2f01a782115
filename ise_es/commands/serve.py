"""`ise-es serve`: the web viewer (ise_es.viewer) on uvicorn."""

from __future__ import annotations

import threading

import click

from ise_es.commands.common import db_option, opened_projection_store, reports_errors

__all__ = ["serve_command"]


@click.command("serve")
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=7575, show_default=True, type=int, help="Port to listen on.")
@click.option("--open", "open_browser", is_flag=True, help="Open the viewer in a web browser.")
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="NAME",
    help="Another Host header name to accept (repeatable). Loopback names and --host are "
    "always accepted; every other name is refused (DNS-rebinding protection).",
)
@click.option(
    "--index-interval",
    default=2.0,
    show_default=True,
    type=float,
    help="Seconds between catch-ups of the session index (the list's read model); 0: none.",
)
@reports_errors
def serve_command(
    db_url: str,
    host: str,
    port: int,
    open_browser: bool,
    allow_hosts: tuple[str, ...],
    index_interval: float,
) -> None:
    """Browse the corpus, sessions, replays and audits in a web browser.

    Read-only on the event log: it never appends. It keeps its own read model (the session
    index) caught up in the background, so the list pages 25k sessions at once. Binds
    127.0.0.1 by default; listening elsewhere exposes the corpus to that network.

    \b
    Example:
        ise-es serve --db sqlite:///corpus.db --open
        ise-es serve --db postgresql://u:pw@127.0.0.1/corpus --port 8080
    """
    _serve(db_url, host, port, open_browser, allow_hosts, index_interval)


def _serve(
    db_url: str,
    host: str,
    port: int,
    open_browser: bool,
    allow_hosts: tuple[str, ...],
    index_interval: float,
) -> None:
    import uvicorn

    from ise_es.viewer.app import create_app, default_hosts

    with opened_projection_store(db_url) as (store, engines):
        app = create_app(
            store,
            engines,
            hosts=default_hosts(host, allow_hosts),
            index_interval=index_interval if index_interval > 0 else None,
        )
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{port}/"
        click.echo(f"ise-es viewer on {url} (Ctrl-C stops)", err=True)
        if open_browser:
            import webbrowser  # ~18 ms, and every command imports this module at start-up

            threading.Timer(1.0, webbrowser.open, args=(url,)).start()
        uvicorn.run(app, host=host, port=port, log_level="warning")
