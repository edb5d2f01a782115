"""The `cron` tool: schedule, list and remove jobs in a crontab file inside the workspace.

Nothing runs the jobs (the sandbox has no cron daemon); the point is that the agent's
scheduling is validated exactly and its effect is a real, inspectable file change.
"""

from __future__ import annotations

from typing import Any

from ise_es.errors import ToolError
from ise_es.tools.base import Tool, ToolContext, ToolOutcome
from ise_es.tools.cronspec import (
    CronJob,
    format_crontab,
    job_id,
    parse_crontab,
    validate_expr,
    validate_name,
    validate_tz,
)
from ise_es.tools.files import read_bytes, write_bytes
from ise_es.tools.schema import ArgumentError

__all__ = ["CRON"]


def _load(ctx: ToolContext) -> list[CronJob]:
    path = ctx.settings.crontab_path
    try:
        data = read_bytes(ctx.sandbox, path, path)
    except ToolError:
        return []
    return parse_crontab(data.decode("utf-8", errors="replace"), path)


def _describe(job: CronJob) -> str:
    return f"{job.id}  {job.name}  '{job.expr}' {job.tz}  :: {job.command}"


def run_cron(ctx: ToolContext, args: dict[str, Any]) -> ToolOutcome:
    action: str = args["action"]
    path = ctx.settings.crontab_path
    jobs = _load(ctx)
    if action == "list":
        text = "\n".join(_describe(j) for j in jobs) if jobs else "No cron jobs."
        return ToolOutcome(text=text, details={"jobs": [_job_dict(j) for j in jobs]})
    if action == "add":
        for name in ("expr", "command"):
            if not args.get(name):
                raise ArgumentError(f"missing required argument '{name}' for action 'add'")
        expr = _arg(validate_expr, args["expr"], "expr")
        tz = _arg(validate_tz, args.get("tz") or "UTC", "tz")
        name = _arg(validate_name, args.get("name") or "job", "name")
        command: str = args["command"].strip()
        if "\n" in command or "\r" in command:
            raise ArgumentError("argument 'command' must be a single line")
        # An unescaped % ends the command in crontab syntax (the rest becomes stdin).
        if "%" in command.replace("\\%", ""):
            raise ArgumentError("argument 'command': escape '%' as '\\%' in crontab commands")
        job = CronJob(
            id=job_id(name, expr, tz, command), name=name, expr=expr, tz=tz, command=command
        )
        if any(j.id == job.id for j in jobs):
            raise ToolError(f"job {job.id} ({name}) is already scheduled with the same schedule")
        jobs.append(job)
        write_bytes(ctx.sandbox, path, path, format_crontab(jobs).encode())
        return ToolOutcome(
            text=f"Scheduled {job.id} ({name}): '{expr}' in {tz} :: {command}",
            details={"job": _job_dict(job), "crontab": path},
        )
    if action == "remove":
        key = args.get("jobId") or args.get("name")
        if not key:
            raise ArgumentError("action 'remove' needs argument 'jobId' (or 'name')")
        matches = [j for j in jobs if key in (j.id, j.name)]
        if not matches:
            known = ", ".join(f"{j.id} ({j.name})" for j in jobs) or "none"
            raise ToolError(f"no cron job {key!r} (jobs: {known})")
        if len(matches) > 1:
            ids = ", ".join(j.id for j in matches)
            raise ToolError(f"{len(matches)} jobs are named {key!r} ({ids}); remove one by jobId")
        remaining = [j for j in jobs if j is not matches[0]]
        write_bytes(ctx.sandbox, path, path, format_crontab(remaining).encode())
        return ToolOutcome(
            text=f"Removed {matches[0].id} ({matches[0].name}).",
            details={"job": _job_dict(matches[0]), "crontab": path},
        )
    raise ArgumentError(f"argument 'action': unknown action {action!r}")  # pragma: no cover


def _arg(check: Any, value: str, name: str) -> str:
    try:
        result: str = check(value)
    except ToolError as e:
        raise ArgumentError(f"argument '{name}': {e}") from e
    return result


def _job_dict(job: CronJob) -> dict[str, str]:
    return {"id": job.id, "name": job.name, "expr": job.expr, "tz": job.tz, "command": job.command}


CRON = Tool(
    name="cron",
    description=(
        "Schedule, list and remove cron jobs (kept in the workspace crontab). A schedule is a "
        "5-field cron expression (minute hour day-of-month month day-of-week) plus an IANA "
        "time zone, e.g. expr='30 2 * * 1-5', tz='Europe/Paris'."
    ),
    parameters={
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["add", "list", "remove"]},
            "expr": {"type": "string", "description": "5-field cron expression (add)."},
            "tz": {"type": "string", "description": "IANA time zone (add; default UTC)."},
            "command": {"type": "string", "description": "Command line to run (add)."},
            "name": {"type": "string", "description": "Job name (add; or remove by name)."},
            "jobId": {"type": "string", "description": "Job id to remove."},
        },
        "required": ["action"],
        "additionalProperties": False,
    },
    execute=run_cron,
)
