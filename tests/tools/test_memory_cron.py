"""memory_search, memory_get and cron, in a real sandbox (the `notes` template)."""

from __future__ import annotations

import pytest

from ise_es.events import FsDiff
from ise_es.sandbox import Sandbox
from ise_es.tools.memory import passages, score_passages
from tests.tools.conftest import Harness

# -- memory ------------------------------------------------------------------------------------


def test_passages_and_scores_are_keyword_shares() -> None:
    text = "# Title\n\nalpha beta\ngamma\n\ndelta alpha\n"
    cut = passages("m.md", text)
    assert [(p.start, p.end) for p in cut] == [(1, 1), (3, 4), (6, 6)]
    ranked = score_passages("alpha gamma", cut)
    assert ranked[0][2].start == 3 and ranked[0][0] == pytest.approx(1.0)
    assert 0 < ranked[1][0] < 1 and ranked[1][2].start == 6
    assert score_passages("the of and", cut) == []


def test_memory_search_finds_the_right_file(harness: Harness) -> None:
    finished = harness.call("memory_search", query="dentist appointment reminder")
    results = finished.details["results"]
    assert results[0]["path"] == "memory/2026-03-11.md"
    assert results[0]["startLine"] == 3 and results[0]["endLine"] == 4
    assert finished.result_text.startswith("memory/2026-03-11.md:3-4 (score ")
    assert "dentist appointment" in finished.result_text
    assert finished.details["files"] == 3


def test_memory_search_limits_and_min_score(harness: Harness) -> None:
    both = harness.call("memory_search", query="UTC schedules", maxResults=5)
    paths = [r["path"] for r in both.details["results"]]
    assert paths[0] == "memory/2026-03-11.md" and "MEMORY.md" in paths
    one = harness.call("memory_search", query="UTC schedules", maxResults=1)
    assert len(one.details["results"]) == 1
    strict = harness.call("memory_search", query="UTC schedules", minScore=0.99)
    assert [r["path"] for r in strict.details["results"]] == ["memory/2026-03-11.md"]
    none = harness.call("memory_search", query="kangaroo")
    assert none.result_text == "No matches for 'kangaroo' in 3 memory file(s)."


def test_memory_search_sees_new_notes_and_skips_symlinks(
    harness: Harness, sandbox: Sandbox
) -> None:
    harness.call("write", path="memory/2026-03-12.md", content="- Kangaroo facts requested.\n")
    harness.call("exec", command="ln -s /etc/passwd memory/leak.md")
    found = harness.call("memory_search", query="kangaroo")
    assert [r["path"] for r in found.details["results"]] == ["memory/2026-03-12.md"]
    assert found.details["files"] == 4


def test_memory_get_lines(harness: Harness) -> None:
    got = harness.call("memory_get", path="MEMORY.md", **{"from": 3, "lines": 2})
    assert (
        got.result_text
        == "- Name: Alex. Time zone: UTC.\n- Likes concise summaries, dislikes emoji."
    )
    assert got.details == {"path": "MEMORY.md", "from": 3, "lines": 2, "totalLines": 5}
    whole = harness.call("memory_get", path="memory/2026-03-10.md")
    assert whole.result_text.startswith("# 2026-03-10\n\n- User prefers")


def test_memory_get_refuses_other_files(harness: Harness) -> None:
    other = harness.call("memory_get", path="todo.md")
    assert other.is_error and "memory_get reads MEMORY.md and memory/*.md only" in (
        other.result_text
    )
    missing = harness.call("memory_get", path="memory/1999-01-01.md")
    assert missing.result_text == "File not found: memory/1999-01-01.md"
    beyond = harness.call("memory_get", path="MEMORY.md", **{"from": 50})
    assert beyond.is_error and "argument 'from' (50) is beyond the end" in beyond.result_text


# -- cron --------------------------------------------------------------------------------------


def test_cron_add_list_remove(harness: Harness, sandbox: Sandbox) -> None:
    assert harness.call("cron", action="list").result_text == "No cron jobs."
    added = harness.call(
        "cron",
        action="add",
        name="weekly-report",
        expr="0 9 * * mon",
        tz="Europe/Paris",
        command="python3 report.py --week",
    )
    job = added.details["job"]
    assert added.result_text == (
        f"Scheduled {job['id']} (weekly-report): '0 9 * * mon' in Europe/Paris :: "
        "python3 report.py --week"
    )
    crontab = sandbox.read_file(".crontab").decode()
    assert f"# ise-es job {job['id']} name=weekly-report\n" in crontab
    assert "CRON_TZ=Europe/Paris\n0 9 * * mon python3 report.py --week\n" in crontab
    diff = harness.of_call(added.call_id)[-1]
    assert isinstance(diff, FsDiff) and [c.path for c in diff.changes] == [".crontab"]

    harness.call("cron", action="add", expr="*/15 * * * *", command="./poll.sh")
    listed = harness.call("cron", action="list")
    assert [j["name"] for j in listed.details["jobs"]] == ["weekly-report", "job"]
    assert listed.result_text.splitlines()[1].endswith("'*/15 * * * *' UTC  :: ./poll.sh")

    duplicate = harness.call(
        "cron",
        action="add",
        name="weekly-report",
        expr="0 9 * * mon",
        tz="Europe/Paris",
        command="python3 report.py --week",
    )
    assert duplicate.is_error and "already scheduled" in duplicate.result_text

    removed = harness.call("cron", action="remove", jobId=job["id"])
    assert removed.result_text == f"Removed {job['id']} (weekly-report)."
    assert "weekly-report" not in sandbox.read_file(".crontab").decode()
    by_name = harness.call("cron", action="remove", name="job")
    assert not by_name.is_error
    assert harness.call("cron", action="list").result_text == "No cron jobs."


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"expr": "61 * * * *", "command": "x"}, "argument 'expr': minute field: 61 is out of"),
        ({"expr": "* * * *", "command": "x"}, "argument 'expr': cron expression '* * * *' has 4"),
        ({"expr": "* * * * *", "tz": "Moon/Base", "command": "x"}, "argument 'tz': unknown time"),
        ({"expr": "* * * * *", "command": "date +%s"}, "escape '%' as '\\%'"),
        ({"expr": "* * * * *", "command": "a\nb"}, "must be a single line"),
        ({"expr": "* * * * *", "command": "x", "name": "bad name"}, "argument 'name': job name"),
    ],
)
def test_cron_rejects_bad_entries_without_writing(
    harness: Harness, sandbox: Sandbox, args: dict[str, str], message: str
) -> None:
    finished = harness.call("cron", action="add", **args)
    assert finished.is_error and message in finished.result_text
    with pytest.raises(FileNotFoundError):
        sandbox.read_file(".crontab")


def test_cron_remove_unknown_and_hand_edited_crontab(harness: Harness, sandbox: Sandbox) -> None:
    unknown = harness.call("cron", action="remove", jobId="job-00000000")
    assert unknown.is_error and "no cron job 'job-00000000' (jobs: none)" in unknown.result_text
    sandbox.write_file(".crontab", b"# mine\n* * * * * rogue\n")
    broken = harness.call("cron", action="list")
    assert broken.is_error and ".crontab:2: line not written by the cron tool" in (
        broken.result_text
    )
