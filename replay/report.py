"""A replay report as JSON (`replay --json`); ise_es/commands/replay_report.py prints the
human one."""

from __future__ import annotations

from typing import Any

import msgspec

from replay.model import ReplayReport

__all__ = ["report_json", "report_to_builtins"]


def report_to_builtins(report: ReplayReport) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(report)
    data["exit_code"] = report.exit_code
    return data


def report_json(report: ReplayReport) -> str:
    return msgspec.json.encode(report_to_builtins(report)).decode()
