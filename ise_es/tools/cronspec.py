"""Cron expressions and the workspace crontab file (pure; the `cron` tool does the I/O).

A schedule is a classic 5-field expression (minute hour day-of-month month day-of-week) plus
an IANA time zone. Fields accept `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, lists
`a,b`, and month/day names (`jan`, `mon`). Each job is written to the crontab as a comment
line carrying its id and name, a `CRON_TZ=` line (cronie's per-job time zone), and the entry,
so the file is both valid for a cron daemon and parseable back into jobs.
"""

from __future__ import annotations

import hashlib
import re
import zoneinfo
from functools import cache

import msgspec

from ise_es.errors import ToolError

__all__ = ["CronError", "CronJob", "format_crontab", "job_id", "parse_crontab", "validate_expr"]


class CronError(ToolError):
    """An invalid cron expression, time zone or crontab."""


class CronJob(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    expr: str
    tz: str
    command: str


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, {m: i for i, m in enumerate(_MONTHS, 1)}),
    # 7 is Sunday too, as in every common cron.
    ("day-of-week", 0, 7, {d: i for i, d in enumerate(_DAYS)}),
)


def _value(token: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    lowered = token.lower()
    if lowered in names:
        return names[lowered]
    if not token.isdigit():
        raise CronError(
            f"{name} field: {token!r} is not a number"
            + (f" or a name ({', '.join(names)})" if names else "")
        )
    number = int(token)
    if not low <= number <= high:
        raise CronError(f"{name} field: {number} is out of range {low}-{high}")
    return number


def _check_field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> None:
    for part in text.split(","):
        if not part:
            raise CronError(f"{name} field {text!r}: empty list item")
        base, slash, step = part.partition("/")
        if slash:
            if not step.isdigit() or int(step) == 0:
                raise CronError(f"{name} field {part!r}: step must be a positive number")
            if int(step) > high:
                raise CronError(f"{name} field {part!r}: step {step} exceeds {high}")
        if base == "*":
            continue
        start, dash, end = base.partition("-")
        first = _value(start, name, low, high, names)
        if dash:
            last = _value(end, name, low, high, names)
            if last < first:
                raise CronError(f"{name} field {part!r}: range runs backwards")
        elif slash:
            # `5/15` means "from 5, every 15" in Vixie cron; accept it.
            pass


def validate_expr(expr: str) -> str:
    """Return the expression with whitespace normalised.

    Raises:
        CronError: naming the field that is wrong.
    """
    fields = expr.split()
    if len(fields) != 5:
        raise CronError(
            f"cron expression {expr!r} has {len(fields)} field{'s' * (len(fields) != 1)}; "
            "expected 5 "
            "(minute hour day-of-month month day-of-week), e.g. '30 2 * * 1-5'"
        )
    for text, (name, low, high, names) in zip(fields, _FIELDS, strict=True):
        _check_field(text, name, low, high, names)
    return " ".join(fields)


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_tz(tz: str) -> str:
    """Raises CronError unless `tz` is a known IANA time zone name."""
    # Checked against the list rather than by loading it: ZoneInfo() would also accept
    # file-system-like keys we do not want written into a crontab.
    if tz not in _zones():
        raise CronError(
            f"unknown time zone {tz!r}: use an IANA name such as 'UTC' or 'Europe/Paris'"
        )
    return tz


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def validate_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise CronError(
            f"job name {name!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return name


def job_id(name: str, expr: str, tz: str, command: str) -> str:
    """A content-derived id, so replaying the same call installs the same job id."""
    digest = hashlib.sha256("\x00".join((name, expr, tz, command)).encode()).hexdigest()
    return f"job-{digest[:8]}"


_HEADER = "# crontab managed by ise-es (cron tool); one job = marker, CRON_TZ, entry\n"
_MARKER_RE = re.compile(r"^# ise-es job (?P<id>job-[0-9a-f]{8}) name=(?P<name>\S+)$")


def format_crontab(jobs: list[CronJob]) -> str:
    out = [_HEADER]
    for job in jobs:
        out.append(f"# ise-es job {job.id} name={job.name}\n")
        out.append(f"CRON_TZ={job.tz}\n")
        out.append(f"{job.expr} {job.command}\n")
    return "".join(out)


def parse_crontab(text: str, path: str) -> list[CronJob]:
    """Read jobs back from a crontab written by `format_crontab`.

    Raises:
        CronError: naming the file and line when the file was edited into something else.
    """
    jobs: list[CronJob] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _MARKER_RE.match(lines[i])
        if match is None:
            stripped = lines[i].strip()
            if stripped and not stripped.startswith("#"):
                raise CronError(f"{path}:{i + 1}: line not written by the cron tool: {stripped!r}")
            i += 1
            continue
        if i + 2 >= len(lines) or not lines[i + 1].startswith("CRON_TZ="):
            raise CronError(f"{path}:{i + 2}: expected CRON_TZ= after the job marker")
        tz = lines[i + 1][len("CRON_TZ=") :]
        parts = lines[i + 2].split(None, 5)
        if len(parts) < 6:
            raise CronError(f"{path}:{i + 3}: expected a 5-field schedule and a command")
        jobs.append(
            CronJob(
                id=match["id"],
                name=match["name"],
                expr=" ".join(parts[:5]),
                tz=tz,
                command=parts[5],
            )
        )
        i += 3
    return jobs
