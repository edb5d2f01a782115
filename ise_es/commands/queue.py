"""`ise-es queue` and `ise-es queue retry`: the store's work queue (ise_es/fleet/status.py)
shown for people or as JSON, and ended items queued again."""

from __future__ import annotations

import time
from typing import Any

import click

from ise_es.commands.common import db_option, opened_store, reports_errors
from ise_es.commands.options import SESSION_STATUSES

__all__ = ["queue_group"]


@click.group("queue", invoke_without_command=True)
@db_option
@click.option("--json", "as_json", is_flag=True, help="The status as one JSON object.")
@click.option(
    "--window",
    type=click.FloatRange(1),
    default=10.0,
    show_default=True,
    help="Minutes of history behind the throughput and the ETA.",
)
@click.pass_context
@reports_errors
def queue_group(ctx: click.Context, db_url: str, as_json: bool, window: float) -> None:
    """The work queue: counts by state, what each live worker holds, throughput and ETA.

    \b
    Example:
        ise-es queue --db postgresql://ise:pw@10.0.0.5/corpus
        ise-es queue --json
        ise-es queue retry --status error --status failed
    """
    if ctx.invoked_subcommand is not None:
        return
    import msgspec

    from ise_es.fleet.status import queue_status

    with opened_store(db_url) as store:
        status = queue_status(store, window_s=window * 60)
    if as_json:
        click.echo(msgspec.json.encode(status).decode())
        return
    _print_status(status)


@queue_group.command("retry")
@db_option
@click.option(
    "--status",
    "statuses",
    type=click.Choice([*SESSION_STATUSES, "failed"]),
    multiple=True,
    required=True,
    help="Re-queue items whose session ended so (`failed`: items out of attempts). Repeat.",
)
@reports_errors
def queue_retry(db_url: str, statuses: tuple[str, ...]) -> None:
    """Queue ended items again as a new attempt (their earlier sessions stay in the log).

    \b
    Example:
        ise-es queue retry --status failed
        ise-es queue retry --status error --status turn_cap
    """
    with opened_store(db_url) as store:
        n = store.queue.retry(statuses=list(statuses))
    click.echo(f"re-queued {n} item{'s' * (n != 1)}")


def _print_status(status: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="work queue", show_header=True, box=None)
    table.add_column("state")
    table.add_column("items", justify="right")
    for name, n in status.counts.items():
        table.add_row(name, str(n))
    console.print(table)
    if status.workers:
        workers = Table(title="live workers", show_header=True, box=None)
        for column in ("worker", "host", "pid", "items", "since", "heartbeat age"):
            workers.add_column(column, no_wrap=True)
        for w in status.workers:
            workers.add_row(
                w.worker_id,
                w.host,
                str(w.pid),
                str(w.items),
                time.strftime("%H:%M:%S", time.localtime(w.since)),
                f"{w.heartbeat_age_s:.1f} s",
            )
        console.print(workers)
    line = f"throughput {status.per_minute:.1f} items/min over {status.window_s / 60:.0f} min"
    if status.eta_s is not None:
        line += f"; ETA {_duration(status.eta_s)} for {status.remaining} remaining"
    console.print(line)


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m" if hours else f"{m}m{s:02d}s"
