"""A session recorded with `--web live` against a loopback "internet" (pages and a SearXNG
search service on 127.0.0.1) through the real `ise-es record`, then replayed by the real
`ise-es replay` after the server is gone: identical, because every answer is in the log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from cli import main
from ise_es.events import HttpExchange, SessionEnded, SessionStarted, ToolCallFinished
from ise_es.store.sql import open_store
from tests.web.conftest import LoopbackServer, wait_closed
from tests.web.test_providers import SEARXNG_ANSWER

ARTICLE = (
    "<html><head><title>Grid storage notes</title></head><body><h1>Grid storage</h1>"
    "<p>Batteries smooth the evening peak.</p></body></html>"
)


def scenario(base: str) -> dict[str, Any]:
    return {
        "intent": "Research grid storage and save a note.",
        "template": "empty",
        "turns": [
            {
                "user": "Look up grid storage and save what you learn.",
                "agent": [
                    {"tool_calls": [{"web_search": {"query": "solar storage", "count": 2}}]},
                    {"tool_calls": [{"web_fetch": {"url": f"{base}/moved"}}]},
                    {"tool_calls": [{"web_fetch": {"url": "http://169.254.169.254/latest/"}}]},
                    {"tool_calls": [{"web_fetch": {"url": f"{base}/to-private"}}]},
                    {
                        "tool_calls": [
                            {"write": {"path": "notes.md", "content": "Batteries smooth peaks.\n"}}
                        ]
                    },
                    {"text": "Saved the note."},
                ],
            }
        ],
        "done": "Thanks.",
    }


def loopback_internet() -> LoopbackServer:
    server = LoopbackServer()
    server.page("/article", ARTICLE)
    server.redirect("/moved", "/article", 301)
    server.redirect("/to-private", "http://10.0.0.5/admin")
    server.routes["/search"] = (
        200,
        {"Content-Type": "application/json"},
        json.dumps(SEARXNG_ANSWER).encode(),
    )
    return server


def session_events(db_url: str) -> list[Any]:
    """The one recorded session's events, read by stream (read_all on PostgreSQL waits for the
    server-wide catch-up horizon, which other suites' transactions hold back)."""
    with open_store(db_url) as store:
        (stream,) = store.streams("session-")
        return [e.data for e in store.read_stream(stream.stream_id)]


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_live_session_replays_identical_with_no_server(db_url: str, tmp_path: Path) -> None:
    server = loopback_internet()
    base = f"http://127.0.0.1:{server.port}"
    directory = tmp_path / "scenarios"
    directory.mkdir()
    (directory / "live-research.yaml").write_text(yaml.safe_dump(scenario(base)))
    try:
        recorded = invoke(
            "record", "--scenario", str(directory), "--db", db_url,
            "--web", "live", "--web-allow", f"127.0.0.1:{server.port}",
            "--web-search", "searxng", "--web-search-url", f"{base}/search",
        )  # fmt: skip
    finally:
        server.close()
    assert recorded.exit_code == 0, recorded.output
    wait_closed(server.port)

    events = session_events(db_url)
    (started,) = [e for e in events if isinstance(e, SessionStarted)]
    assert started.web is not None and started.web.mode == "live"
    assert started.web.search == "searxng" and started.web.search_url == f"{base}/search"
    assert started.web.allow == [f"127.0.0.1:{server.port}"] and started.web.ports == [80, 443]
    (ended,) = [e for e in events if isinstance(e, SessionEnded)]
    assert ended.status == "completed"
    finished = {e.call_id: e for e in events if isinstance(e, ToolCallFinished)}
    results = [f.result_text for f in finished.values()]
    assert "1. Riverside battery doubles storage" in results[0]
    assert "Batteries smooth the evening peak." in results[1]
    assert results[2].endswith(
        "blocked by egress policy: 169.254.169.254 is link-local (the cloud metadata service)"
    )
    assert results[3].endswith("blocked by egress policy: 10.0.0.5 is private")
    http = [e for e in events if isinstance(e, HttpExchange)]
    assert [(e.status, e.peer is not None, e.blocked is not None) for e in http] == [
        (200, True, False),  # the search, via SearXNG
        (301, True, False),
        (200, True, False),
        (0, False, True),  # the metadata service: nothing sent
        (302, True, False),
        (0, False, True),  # the redirect's private target
    ]

    session_id = started.session_id
    replayed = invoke("replay", session_id, "--json", "--db", db_url)
    report = json.loads(replayed.stdout)
    assert replayed.exit_code == 0, replayed.output
    assert report["status"] == "reproduced"
    assert [s["verdict"] for s in report["steps"]] == ["identical"] * 5


def test_web_off_offers_no_web_tools_and_replays(sqlite_url: str, tmp_path: Path) -> None:
    directory = tmp_path / "scenarios"
    directory.mkdir()
    (directory / "offline.yaml").write_text(yaml.safe_dump(scenario("http://127.0.0.1:9")))
    recorded = invoke("record", "--scenario", str(directory), "--db", sqlite_url, "--web", "off")
    assert recorded.exit_code == 0, recorded.output
    events = session_events(sqlite_url)
    (started,) = [e for e in events if isinstance(e, SessionStarted)]
    assert started.web is not None and started.web.mode == "off"
    names = [s["function"]["name"] for s in started.tool_schemas]
    assert "web_fetch" not in names and "web_search" not in names and "exec" in names
    assert not [e for e in events if isinstance(e, HttpExchange)]
    first = next(e for e in events if isinstance(e, ToolCallFinished))
    assert first.is_error and "web_search" in first.result_text
    replayed = invoke("replay", started.session_id, "--json", "--db", sqlite_url)
    assert replayed.exit_code == 0, replayed.output
    assert json.loads(replayed.stdout)["status"] == "reproduced"
