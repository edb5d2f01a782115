"""The per-sandbox `pids` cgroup of the local backend: the process limit for a root caller,
whom RLIMIT_NPROC does not bind, and a sweep that kills whatever is left in the sandbox."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

__all__ = ["cgroup_pids", "kill_cgroup", "make_pids_cgroup", "pids_root", "remove_cgroup"]

log = logging.getLogger(__name__)


def pids_root() -> str | None:
    """The pids cgroup directory this process is in, if writable (v1 or v2)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            base = os.path.join("/sys/fs/cgroup/pids", path.lstrip("/"))
            if os.access(base, os.W_OK):
                return base
    for line in lines:
        if line.startswith("0::"):
            base = os.path.join("/sys/fs/cgroup", line[3:].lstrip("/"))
            ctl = os.path.join(base, "cgroup.subtree_control")
            try:
                if "pids" in Path(ctl).read_text().split() and os.access(base, os.W_OK):
                    return base
            except OSError:
                return None
    return None


def make_pids_cgroup(name: str, max_pids: int) -> str | None:
    """A new cgroup `name` capped at `max_pids` processes; None where none can be made."""
    root = pids_root()
    if root is None:
        return None
    path = os.path.join(root, name)
    try:
        os.mkdir(path)
        Path(path, "pids.max").write_text(str(max_pids))
    except OSError as e:
        log.warning("cannot create a pids cgroup under %s: %s", root, e)
        remove_cgroup(path)
        return None
    return path


def cgroup_pids(cgroup: str) -> list[int]:
    """The processes in the cgroup now ([] once it is gone)."""
    try:
        return [int(x) for x in Path(cgroup, "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def kill_cgroup(cgroup: str | None) -> None:
    """SIGKILL every process in the cgroup (nothing for None)."""
    if cgroup is None:
        return
    for pid in cgroup_pids(cgroup):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)


def remove_cgroup(cgroup: str) -> None:
    """Kill what is in the cgroup and remove it, waiting up to a second for the exits."""
    for _ in range(100):
        kill_cgroup(cgroup)
        try:
            os.rmdir(cgroup)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)  # processes still exiting
    log.warning("could not remove cgroup %s", cgroup)
