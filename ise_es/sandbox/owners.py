"""Naming the process that owns a sandbox, so that one left behind by a dead process (killed,
crashed) can be told from one still in use and freed."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["owner_alive", "owner_token"]


def owner_token(pid: int | None = None) -> str:
    """`pid starttime`: names a process such that a recycled pid does not match."""
    pid = os.getpid() if pid is None else pid
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return f"{pid} {stat[stat.rindex(')') + 2 :].split()[19]}"


def owner_alive(token: str) -> bool:
    pid = token.split()[0] if token.split() else ""
    return pid.isdigit() and owner_token(int(pid)) == token
