"""Normalizers: each one rewrites its kind of noise and leaves look-alikes alone."""

from __future__ import annotations

import pytest

from ise_es.events import FileChange, ToolCallFinished, ToolCallStarted
from replay.compare import ReplayedStep, StepComparator, unified_diff
from replay.normalize import DEFAULT_NORMALIZERS, NormalizerSet, select_normalizers
from replay.recorded import RecordedStep

CASES = [
    ("timestamps", "now: 2026-03-26T21:29:03,123456789+00:00", "now: <TIMESTAMP>"),
    ("timestamps", "Sat Nov 21 23:07:55 UTC 2026", "<TIMESTAMP>"),
    ("timestamps", "Date: Sat, 21 Nov 2026 23:07:55 +0000", "Date: <TIMESTAMP>"),
    (
        "timestamps",
        "-rw-r--r-- 1 u u 12 Mar 12 10:20 a.txt",
        "-rw-r--r-- 1 u u 12 <TIMESTAMP> a.txt",
    ),
    ("timestamps", "epoch 1763766475", "epoch <EPOCH>"),
    ("timestamps", "day 2026-03-10", "day <DATE>"),
    ("durations", "Ran 3 tests in 0.001s", "Ran 3 tests in <DURATION>"),
    ("durations", "real\t0m0.004s", "real\t<DURATION>"),
    ("durations", "took 12 ms", "took <DURATION>"),
    (
        "pids",
        "Command still running (session a-b, pid 24303).",
        "Command still running (session a-b, pid <PID>).",
    ),
    ("pids", '{"pid": 77}', '{"pid": <PID>}'),
    ("pids", "[1] 4242", "[1] <PID>"),
    ("pids", "/proc/123/status", "/proc/<PID>/status"),
    ("temp-paths", "/tmp/tmp.Xa81kQz0pL", "/tmp/<TMP>"),
    ("temp-paths", "made /tmp/tmpk2_9ab1x/x.txt", "made /tmp/<TMP>/x.txt"),
    ("ids", "id 123e4567-e89b-12d3-a456-426614174000", "id <UUID>"),
    ("ids", "container 4f2a9c1e0b7d4e21", "container <HEX>"),
    ("ansi", "\x1b[1;31mred\x1b[0m", "red"),
    ("hostnames", "hello from buildbox-7", "hello from <HOST>"),
    ("hostnames", "ping db.internal", "ping <HOST>"),
]

LOOKALIKES = [
    "/tmp/workspace/src/tmpfile.py",
    "sha256 3d539ce9d9027478924b72a9d042957381661969e74c538b670bee7114ffe120",
    "Ran 3 tests",
    "Python 3.11.2",
    "exit 0 after 3 retries",
    "deadbeef",
    "1048576",
    "pid-file.txt written",
]


@pytest.mark.parametrize(("name", "raw", "expected"), CASES)
def test_normalizer_rewrites_its_noise(name: str, raw: str, expected: str) -> None:
    result = NormalizerSet([name], hostnames=["buildbox-7"]).apply(raw)
    assert result.text == expected
    assert result.fired == {name: [0]}


@pytest.mark.parametrize("text", LOOKALIKES)
def test_lookalikes_are_left_alone(text: str) -> None:
    result = NormalizerSet(DEFAULT_NORMALIZERS, hostnames=["buildbox-7"]).apply(text)
    assert result.text == text and result.fired == {}


def test_line_numbers_survive_normalization() -> None:
    text = "a\nRan 1 test in 0.5s\n\x1b[0mb\npid 9\n"
    result = NormalizerSet(DEFAULT_NORMALIZERS, hostnames=[]).apply(text)
    assert result.text.count("\n") == text.count("\n")
    assert result.fired == {"ansi": [2], "durations": [1], "pids": [3]}


def test_selection_all_off_then_one_on() -> None:
    assert select_normalizers() == list(DEFAULT_NORMALIZERS)
    assert select_normalizers(disable=["pids"]) == [n for n in DEFAULT_NORMALIZERS if n != "pids"]
    assert select_normalizers(enable=["pids"], disable=["all"]) == ["pids"]
    with pytest.raises(ValueError, match=r"unknown normalizer 'clock'.*timestamps"):
        select_normalizers(disable=["clock"])


def _step(result_text: str, changes: list[FileChange] | None = None) -> RecordedStep:
    step = RecordedStep(ToolCallStarted(call_id="c1", tool="exec", arguments="{}"))
    step.finished = ToolCallFinished(call_id="c1", tool="exec", result_text=result_text)
    step.changes = changes or []
    return step


def _replayed(result_text: str, changes: list[FileChange] | None = None) -> ReplayedStep:
    return ReplayedStep(
        finished=ToolCallFinished(call_id="c1", tool="exec", result_text=result_text),
        changes=changes or [],
    )


def _no_blobs(digest: str) -> bytes:
    from ise_es.errors import BlobNotFound

    raise BlobNotFound(digest)


def test_equivalent_names_normalizer_and_line() -> None:
    comparator = StepComparator(NormalizerSet(DEFAULT_NORMALIZERS, hostnames=[]), _no_blobs)
    outcome = comparator.compare(
        _step("ok\nstarted pid 10\nsame"), _replayed("ok\nstarted pid 11\nsame")
    )
    assert outcome.verdict == "equivalent"
    (diff,) = outcome.differences
    assert diff.field == "result_text" and diff.normalizers == ["pids"]
    assert [(w.line, w.recorded, w.replayed) for w in diff.where] == [
        (2, "started pid 10", "started pid 11")
    ]


def test_without_normalizers_the_same_step_diverges_with_a_diff() -> None:
    comparator = StepComparator(NormalizerSet([]), _no_blobs)
    outcome = comparator.compare(_step("started pid 10\n"), _replayed("started pid 11\n"))
    assert outcome.verdict == "diverged"
    assert "-started pid 10\n+started pid 11" in outcome.differences[0].diff


def test_file_change_compared_by_path_kind_mode_and_digest() -> None:
    a = FileChange(path="x", kind="added", mode=0o644, size=1, digest="a" * 64)
    b = FileChange(path="x", kind="added", mode=0o755, size=1, digest="a" * 64)
    comparator = StepComparator(NormalizerSet(DEFAULT_NORMALIZERS), _no_blobs)
    outcome = comparator.compare(_step("", [a]), _replayed("", [b]))
    assert outcome.verdict == "diverged"
    (diff,) = outcome.differences
    assert diff.field == "fs:x" and "mode 644" in (diff.recorded or "")
    assert "mode 755" in (diff.replayed or "")
    gone = comparator.compare(_step("", [a]), _replayed("", []))
    assert gone.differences[0].replayed == "(not changed)"


def test_unified_diff_is_capped_and_sees_trailing_newlines() -> None:
    big = unified_diff("\n".join(map(str, range(1000))), "")
    assert big.splitlines()[-1].startswith("... (") and len(big.splitlines()) == 201
    assert "line endings" in unified_diff("a\n", "a")
