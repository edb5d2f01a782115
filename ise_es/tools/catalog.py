"""The default tool set, in the order the agent sees it (FORMATS.md section 1)."""

from __future__ import annotations

from ise_es.tools.base import ToolRegistry
from ise_es.tools.cron import CRON
from ise_es.tools.files import APPLY_PATCH, EDIT, READ, WRITE
from ise_es.tools.memory import MEMORY_GET, MEMORY_SEARCH
from ise_es.tools.shell import EXEC, PROCESS
from ise_es.tools.webtools import WEB_FETCH, WEB_SEARCH

__all__ = ["TOOL_NAMES", "default_registry"]

_TOOLS = (
    EXEC,
    PROCESS,
    READ,
    WRITE,
    EDIT,
    APPLY_PATCH,
    WEB_SEARCH,
    WEB_FETCH,
    MEMORY_SEARCH,
    MEMORY_GET,
    CRON,
)

TOOL_NAMES = tuple(t.name for t in _TOOLS)


def default_registry() -> ToolRegistry:
    """A fresh registry holding every tool."""
    return ToolRegistry(_TOOLS)
