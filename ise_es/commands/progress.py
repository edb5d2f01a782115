"""The one rich progress display: every command that shows progress (`record`, `worker`,
`replay`, `intents personas|generate`) builds it here, so the bars look alike and a change of
columns is made once.

rich is imported when a display is made, not with this module: `--help` and `sessions list`
start without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

__all__ = ["progress_display"]


def progress_display(
    label: str,
    console: Console,
    *,
    bar: bool = True,
    detail: bool = True,
    elapsed: bool = True,
    transient: bool = False,
) -> Progress:
    """A bold `label`, then a bar with `done/total` (`bar`), a free text the caller keeps up
    to date in the task's `detail` field (`detail`), and the time since the start (`elapsed`).

    Args:
        bar: False for work of unknown size (a worker waiting on the queue).
        transient: clear the display when it stops (a single replay's steps).
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns: list[Any] = [TextColumn(f"[bold]{label}")]
    if bar:
        columns += [BarColumn(), MofNCompleteColumn()]
    if detail:
        columns.append(TextColumn("{task.fields[detail]}"))
    if elapsed:
        columns.append(TimeElapsedColumn())
    return Progress(*columns, console=console, transient=transient)
