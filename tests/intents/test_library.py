"""The shipped domain/task library and its load-time validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from ise_es.errors import InvalidInput
from ise_es.intents.library import AGENT_TOOLS, load_library, parse_placeholders

PAPER_DOMAINS = [
    "Intelligence-Core",
    "Code-Runtime",
    "File-IO",
    "Source-Chain",
    "Automation-Flow",
    "Web-Extraction",
    "Comms-Social",
    "Multimedia",
    "Agent-Memory",
    "System-Infrastructure",
]


def test_shipped_library_has_the_papers_domains_and_131_tasks() -> None:
    lib = load_library()
    assert [d.name for d in lib.domains] == PAPER_DOMAINS
    assert [d.id for d in lib.domains] == [n.lower() for n in PAPER_DOMAINS]
    assert lib.task_count == 131
    assert len(lib.tasks_by_id()) == 131


def test_every_tool_is_needed_by_some_task() -> None:
    lib = load_library()
    used = {tool for d in lib.domains for t in d.tasks for tool in t.tools}
    assert used == set(AGENT_TOOLS)


def test_tasks_know_their_domain_and_tools_follow_registry_order() -> None:
    lib = load_library()
    task = lib.task("price-monitor")
    assert task.domain == "web-extraction"
    assert lib.tools_for(["price-monitor", "write-script"]) == [
        "exec",
        "write",
        "web_fetch",
        "cron",
    ]


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "lib.yaml"
    path.write_text(body)
    return path


GOOD_TASK = "{id: t1, name: T, tools: [exec], keywords: [t], description: run it}"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            f"version: 1\ndomains:\n - {{id: a, name: A, description: d, tasks: [{GOOD_TASK}]}}\n"
            f" - {{id: a, name: A2, description: d, tasks: []}}\n",
            "domain 'a': duplicate domain id",
        ),
        (
            "version: 1\ndomains:\n - {id: a, name: A, description: d, tasks: []}\n",
            "domain 'a': has no tasks",
        ),
        (
            "version: 1\ndomains:\n - {id: a, name: A, description: d, tasks: "
            "[{id: t1, name: T, tools: [exec, telnet], keywords: [t], description: x}]}\n",
            "task 't1': unknown tool(s) telnet",
        ),
        (
            f"version: 1\ndomains:\n - {{id: a, name: A, description: d, tasks: [{GOOD_TASK}]}}\n"
            f" - {{id: b, name: B, description: d, tasks: [{GOOD_TASK}]}}\n",
            "task 't1': duplicate task id (also in 'a')",
        ),
        (
            "version: 1\ndomains:\n - {id: a, name: A, description: d, tasks: "
            "[{id: t1, name: T, tools: [exec], keywords: [t], description: 'use {n:9-2}'}]}\n",
            "task 't1': description: {n} needs a range A-B with A <= B",
        ),
        (
            "version: 1\ndomains:\n - {id: a, name: A, description: d, tasks: "
            "[{id: t1, name: T, tools: [exec], keywords: [T], description: x}]}\n",
            "keywords must be non-empty lower-case strings",
        ),
        ("version: 1\ndomains: [\n", "not valid YAML"),
    ],
)
def test_invalid_libraries_fail_naming_the_place(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=r"lib\.yaml") as info:
        load_library(_write(tmp_path, body))
    assert message in str(info.value)


def test_a_valid_custom_library_loads(tmp_path: Path) -> None:
    body = f"version: 1\ndomains:\n - {{id: a, name: A, description: d, tasks: [{GOOD_TASK}]}}\n"
    lib = load_library(_write(tmp_path, body))
    assert lib.task("t1").domain == "a"


def test_placeholder_grammar() -> None:
    assert parse_placeholders("top {n:3-9} in {file:csv} at {url}") == [
        ("n", "3-9"),
        ("file", "csv"),
        ("url", None),
    ]
    for bad in ["{colour}", "{file}", "{url:x}", "{n:3}", "oops {"]:
        with pytest.raises(ValueError):
            parse_placeholders(bad)
