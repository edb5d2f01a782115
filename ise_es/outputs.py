"""Writing the files a command is asked for (`-o FILE`, `--plots DIR`): complete or not at all,
and never over something that is not a regular file.

Every output goes to a temporary file beside its target, is fsynced, and is renamed onto the
target only when all of it was written, so a reader never sees half a file and a failed run
leaves the old file as it was. The rename is why the target's type matters: `os.replace` swaps
whatever the name points at, so as root `-o /dev/full` used to replace the device node with a
regular file. The rules, checked before anything is read or written:

- the target is absent (it is created) or a regular file (it is replaced; its permission bits
  are kept, ownership and hard links are not, as with any rename);
- a character or block device, a FIFO, a socket or a directory at the target is refused with
  `OutputError` and left untouched (a FIFO is never opened, so nothing blocks);
- a symlink is written *through*: the rename lands on the file the link resolves to, so the link
  stays a link and its target gets the new content (a dangling link creates its target);
- the directory the file lands in must exist and be writable: it is not created (a typo in a
  path should not grow a directory tree), except by `prepare_output_dir` for `--plots DIR`,
  where the directory itself is what was asked for;
- `-` means standard output, for outputs that are a stream (JSONL, JSON): the bytes go to
  stdout as they are produced, with no temporary file. Outputs that are several files (a split
  export) or binary (PNG) refuse `-`.

Every failure is an `OutputError` (a subclass of `InvalidInput`, exit 2) naming the path; the
`OSError` behind it is chained. Root is not stopped by permission bits, so "unwritable" is
whatever really fails: a read-only file system, a file where a directory should be, a full disk.
The checks are repeated just before the rename, which narrows (but, as with any path-based
check, cannot close) the window in which someone could swap the target.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ise_es.errors import OutputError

__all__ = [
    "STDOUT",
    "PendingOutput",
    "atomic_output",
    "check_output_path",
    "is_stdout",
    "prepare_output_dir",
]

STDOUT = "-"
"""The output name that means standard output."""

_KINDS = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
"""Write errors that are the output's fault, whichever write hit them."""


def is_stdout(path: str | Path | None) -> bool:
    """Whether an output option names standard output (`-`)."""
    return path is not None and str(path) == STDOUT


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


def _refuse_non_regular(shown: str, st: os.stat_result) -> None:
    if stat.S_ISREG(st.st_mode):
        return
    kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
    hint = (
        " (use -o - for standard output)"
        if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)
        else ""
    )
    raise OutputError(f"cannot write {shown}: it is {kind}, not a regular file{hint}")


def _check_directory(shown: str, directory: Path) -> None:
    try:
        st = os.stat(directory)
    except FileNotFoundError as e:
        raise OutputError(
            f"cannot write {shown}: directory {directory} does not exist: create it first"
        ) from e
    except NotADirectoryError as e:
        raise OutputError(
            f"cannot write {shown}: {directory} is not a directory (a file is in the way)"
        ) from e
    except OSError as e:
        raise OutputError(f"cannot write {shown}: directory {directory}: {_reason(e)}") from e
    if not stat.S_ISDIR(st.st_mode):
        raise OutputError(f"cannot write {shown}: {directory} is not a directory")
    # os.access answers for root too where it matters: EROFS on a read-only mount.
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {shown}: directory {directory} is not writable")


def check_output_path(path: str | Path) -> Path:
    """The path the output will be renamed onto: `path` itself, or what a symlink there
    resolves to. Nothing is created.

    Raises:
        OutputError: `-` (callers handle stdout first), a device, FIFO, socket or directory at
            the target, a symlink loop, or a directory that is missing or not writable.
    """
    shown = str(path)
    if not shown or shown == STDOUT:
        raise OutputError(f"cannot write {shown or 'an empty path'}: give a file name")
    given = Path(path)
    try:
        st: os.stat_result | None = os.stat(given)  # follows symlinks: the type that matters
    except FileNotFoundError:
        st = None
    except NotADirectoryError as e:
        raise OutputError(
            f"cannot write {shown}: a file is in the way of the directory it names"
        ) from e
    except OSError as e:
        raise OutputError(f"cannot write {shown}: {_reason(e)}") from e
    if st is not None:
        _refuse_non_regular(shown, st)
    target = Path(os.path.realpath(given.absolute()))
    _check_directory(shown, target.parent)
    return target


def prepare_output_dir(path: str | Path) -> Path:
    """A directory to write several outputs into (`--plots DIR`), created with its parents
    when missing.

    Raises:
        OutputError: something that is not a directory is there or in the way, or it cannot be
            created or written.
    """
    shown = str(path)
    if not shown or shown == STDOUT:
        raise OutputError(f"cannot write into {shown or 'an empty path'}: give a directory")
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError as e:
        raise OutputError(f"cannot write into {shown}: it exists and is not a directory") from e
    except NotADirectoryError as e:
        raise OutputError(f"cannot create {shown}: a file is in the way") from e
    except OSError as e:
        raise OutputError(f"cannot create directory {shown}: {_reason(e)}") from e
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write into {shown}: the directory is not writable")
    return directory


def _new_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


class PendingOutput:
    """A temporary file beside one output's target. Write to `file`, then `commit()` renames it
    onto the target, or `discard()` removes it. Several can be committed together (a split
    export renames its files only once every one of them is written).
    """

    def __init__(self, path: str | Path) -> None:
        self.shown = str(path)
        self.target = check_output_path(path)
        try:
            fd, tmp = tempfile.mkstemp(
                dir=self.target.parent, prefix=f".{self.target.name}.", suffix=".tmp"
            )
        except OSError as e:
            raise OutputError(
                f"cannot write {self.shown}: directory {self.target.parent}: {_reason(e)}"
            ) from e
        self.temp = Path(tmp)
        self.file: BinaryIO = os.fdopen(fd, "w+b")

    def commit(self) -> Path:
        """Flush, fsync and rename onto the target; returns the target.

        Raises:
            OutputError: the data could not be written (full disk...) or the target became
                something that is not a regular file; the temporary file is removed.
        """
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            check_output_path(self.shown)  # again: it may have changed while we wrote
            try:
                mode = stat.S_IMODE(os.stat(self.target).st_mode)
            except FileNotFoundError:
                mode = _new_file_mode()
            os.chmod(self.temp, mode)
            os.replace(self.temp, self.target)
        except OSError as e:
            self.discard()
            raise OutputError(f"cannot write {self.shown}: {_reason(e)}") from e
        except BaseException:
            self.discard()
            raise
        return self.target

    def discard(self) -> None:
        """Close and remove the temporary file (the target is left as it was)."""
        self.file.close()
        self.temp.unlink(missing_ok=True)


@contextmanager
def atomic_output(path: str | Path, *, stdout_ok: bool = True) -> Iterator[BinaryIO]:
    """A binary file to write one output into; renamed into place when the block exits
    normally, removed when it raises. `-` yields standard output when `stdout_ok`.

    Raises:
        OutputError: see `check_output_path` and `PendingOutput.commit`; `-` without
            `stdout_ok`.
    """
    if is_stdout(path):
        if not stdout_ok:
            raise OutputError("this output cannot go to standard output (-): give a file name")
        sys.stdout.flush()  # text written before must come first
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    pending = PendingOutput(path)
    try:
        yield pending.file
    except OSError as e:
        pending.discard()
        if e.errno in _FULL:
            raise OutputError(f"cannot write {pending.shown}: {_reason(e)}") from e
        raise
    except BaseException:
        pending.discard()
        raise
    pending.commit()
