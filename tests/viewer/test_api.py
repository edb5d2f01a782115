"""The viewer's JSON API through Starlette's test client, on SQLite and PostgreSQL, over
sessions recorded for real."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from ise_es.store.sql import open_store
from tests.viewer.conftest import Corpus, Viewer, close_viewer, open_viewer, record, settle

BASE = "http://127.0.0.1:7575"


@pytest.fixture(scope="module")
def viewer(corpus: Corpus) -> Iterator[Viewer]:
    v = open_viewer(corpus.url)
    settle(v)
    yield v
    close_viewer(v)


@pytest.fixture(scope="module")
def client(viewer: Viewer) -> Iterator[TestClient]:
    with TestClient(viewer.app, base_url=BASE) as c:
        yield c


def get(client: TestClient, path: str, status: int = 200) -> Any:
    r = client.get(path)
    assert r.status_code == status, r.text
    return r.json()


def ids(body: dict[str, Any]) -> list[str]:
    return [s["session_id"] for s in body["sessions"]]


def test_list_has_every_session_with_its_figures(client: TestClient, corpus: Corpus) -> None:
    body = get(client, "/api/sessions")
    assert body["total"] == 3
    assert set(ids(body)) == {corpus.xss, corpus.drift, corpus.shell}
    assert body["counts"] == {"completed": 2, "turn_cap": 1}
    xss = next(s for s in body["sessions"] if s["session_id"] == corpus.xss)
    assert xss["intent_id"] == "scenario-viewer-xss"
    assert (xss["status"], xss["user_turns"], xss["tool_calls"]) == ("completed", 2, 5)
    assert xss["duration_s"] is not None and xss["duration_s"] >= 0
    assert xss["replay_verdict"] in ("reproduced", "equivalent")
    assert set(xss) >= {
        "session_id", "intent_id", "status", "user_turns", "tool_calls", "started_at",
        "duration_s", "tokens", "audit_flags", "replay_verdict",
    }  # fmt: skip


def test_paging_and_sorting(client: TestClient, corpus: Corpus) -> None:
    by_calls = ids(get(client, "/api/sessions?sort=tool_calls"))
    assert by_calls[0] == corpus.drift  # 1 call before the cap
    first = get(client, "/api/sessions?sort=-started_at&limit=2")
    second = get(client, "/api/sessions?sort=-started_at&limit=2&offset=2")
    assert first["total"] == second["total"] == 3
    assert len(first["sessions"]) == 2 and len(second["sessions"]) == 1
    newest_first = ids(first) + ids(second)
    assert newest_first == list(reversed(ids(get(client, "/api/sessions?sort=started_at"))))
    assert newest_first[0] == corpus.shell  # recorded last
    assert "unknown sort" in get(client, "/api/sessions?sort=bogus", 400)["error"]
    assert "integer" in get(client, "/api/sessions?limit=ten", 400)["error"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=turn_cap", ["drift"]),
        ("status=completed", ["xss", "shell"]),
        ("tool=edit", ["xss"]),
        ("tool=apply_patch", ["shell"]),
        ("audit=role_drift", ["drift"]),
        ("audit=clean", ["xss", "shell"]),
        ("replay=any", ["xss"]),
        ("replay=none", ["drift", "shell"]),
        ("min_turns=2", ["xss", "shell"]),
        ("q=red+alert", ["xss"]),  # tool output
        ("q=LINECOUNT", ["shell"]),  # an agent's command output, any case
        ("q=list+the+files+for+me", ["drift"]),  # a user turn
        ("q=exits+3+on+purpose", ["xss"]),  # agent text
        ("q=100%25", []),  # LIKE wildcards are literal
        ("status=completed&tool=edit&q=notes", ["xss"]),
    ],
)
def test_filters(client: TestClient, corpus: Corpus, query: str, expected: list[str]) -> None:
    body = get(client, f"/api/sessions?{query}")
    assert sorted(ids(body)) == sorted(getattr(corpus, name) for name in expected)
    assert body["total"] == len(expected)


def test_counts_per_status_ignore_the_status_filter(client: TestClient) -> None:
    body = get(client, "/api/sessions?status=turn_cap")
    assert body["total"] == 1
    assert body["counts"] == {"completed": 2, "turn_cap": 1}


def test_session_has_intent_persona_settings_and_ordered_events(
    client: TestClient, corpus: Corpus
) -> None:
    s = get(client, f"/api/sessions/{corpus.xss}")
    assert s["intent"] == "Print some tricky output and keep a notes file up to date."
    assert s["persona"] == {"name": "Ada Tester", "role": "QA engineer"}
    assert s["settings"]["sandbox_backend"] == "local" and "exec" in s["settings"]["tools"]
    versions = [e["v"] for e in s["events"]]
    assert versions == list(range(1, len(versions) + 1))
    assert s["version"] == versions[-1]
    types = [e["type"] for e in s["events"]]
    assert types[0] == "session_started" and types[-1] == "session_ended"
    stdout = b"".join(
        base64.b64decode(e["data"]["data"])
        for e in s["events"]
        if e["type"] == "output_chunk" and e["data"]["stream"] == "stdout"
    )
    assert b"<script>window.__xss=1;alert(1)</script>" in stdout
    finished = [e["data"] for e in s["events"] if e["type"] == "tool_call_finished"]
    assert [f["exit_code"] for f in finished][:3] == [0, 0, 3]
    assert get(client, f"/api/sessions/session-{corpus.xss}")["session_id"] == corpus.xss
    assert s["index"]["session_id"] == corpus.xss


def test_lean_session_drops_model_call_bodies(client: TestClient, corpus: Corpus) -> None:
    full = get(client, f"/api/sessions/{corpus.xss}")
    lean = get(client, f"/api/sessions/{corpus.xss}?lean=1")
    assert [e["v"] for e in full["events"]] == [e["v"] for e in lean["events"]]
    call = next(e["data"] for e in lean["events"] if e["type"] == "model_call")
    assert "response" not in call and "usage" in call
    assert "response" in next(e["data"] for e in full["events"] if e["type"] == "model_call")


def test_audit_findings_name_their_turn(client: TestClient, corpus: Corpus) -> None:
    findings = get(client, f"/api/sessions/{corpus.drift}")["audit"]
    assert {"rule": "role_drift", "turn": 1, "detail": "'I can help you with'"} in findings


def test_live_tail_returns_only_newer_events(client: TestClient, corpus: Corpus) -> None:
    events = get(client, f"/api/sessions/{corpus.xss}")["events"]
    tail = get(client, f"/api/sessions/{corpus.xss}/events?after=5")
    assert [e["v"] for e in tail["events"]] == [e["v"] for e in events[5:]]
    assert tail["ended"] is True and tail["version"] == events[-1]["v"]
    end = get(client, f"/api/sessions/{corpus.xss}/events?after={events[-1]['v']}")
    assert end["events"] == [] and end["version"] == events[-1]["v"]


def test_diff_of_an_edited_file(client: TestClient, corpus: Corpus) -> None:
    events = get(client, f"/api/sessions/{corpus.xss}")["events"]
    edit = next(
        e["data"]["call_id"]
        for e in events
        if e["type"] == "tool_call_started" and e["data"]["tool"] == "edit"
    )
    d = get(client, f"/api/sessions/{corpus.xss}/diff?call={edit}&path=notes.txt")
    assert d["base"] == "previous" and d["kind"] == "modified"
    assert "-second line\n" in d["diff"] and "+second line, edited\n" in d["diff"]
    write = next(
        e["data"]["call_id"]
        for e in events
        if e["type"] == "tool_call_started" and e["data"]["tool"] == "write"
    )
    added = get(client, f"/api/sessions/{corpus.xss}/diff?call={write}&path=notes.txt")
    assert added["base"] == "empty" and "+first line\n" in added["diff"]
    get(client, f"/api/sessions/{corpus.xss}/diff?call={write}&path=nope.txt", 404)
    get(client, f"/api/sessions/{corpus.xss}/diff?call={write}", 400)


def test_blob_is_served_as_text_that_does_not_sniff(client: TestClient, corpus: Corpus) -> None:
    events = get(client, f"/api/sessions/{corpus.xss}")["events"]
    digest = next(
        e["data"]["stdout_digest"]
        for e in events
        if e["type"] == "tool_call_finished" and e["data"]["stdout_digest"]
    )
    r = client.get(f"/api/blobs/{digest}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert b"<script>" in r.content
    assert client.get(f"/api/blobs/{'0' * 64}").status_code == 404
    assert client.get("/api/blobs/../../etc/passwd").status_code == 404


@pytest.mark.parametrize("fmt", ["openai", "sharegpt", "middle"])
def test_export_formats(client: TestClient, corpus: Corpus, fmt: str) -> None:
    sample = get(client, f"/api/sessions/{corpus.xss}/export?format={fmt}")
    if fmt == "openai":
        assert sample["messages"][0]["role"] in ("system", "user") and sample["tools"]
    elif fmt == "sharegpt":
        assert sample["conversations"][0]["from"] == "human"
    else:
        assert sample["session_id"] == corpus.xss and sample["messages"]


def test_export_refuses_an_unknown_format(client: TestClient, corpus: Corpus) -> None:
    assert (
        "unknown format" in get(client, f"/api/sessions/{corpus.xss}/export?format=x", 400)["error"]
    )


def test_replay_steps_beside_their_recorded_calls(client: TestClient, corpus: Corpus) -> None:
    r = get(client, f"/api/replays/{corpus.replay_id}")
    assert r["source_session"] == corpus.xss
    assert r["status"] in ("reproduced", "equivalent")
    assert len(r["steps"]) == 5
    first = r["steps"][0]
    assert first["source"]["tool"] == "exec" and "<script>" in first["source"]["result_text"]
    assert first["step"]["verdict"] in ("identical", "equivalent")
    assert get(client, f"/api/replays/replay-{corpus.replay_id}")["replay_id"] == corpus.replay_id


def test_stats_match_the_sessions(client: TestClient) -> None:
    st = get(client, "/api/stats")
    assert st["sessions"] == 3
    assert st["sessions_by_status"] == {"completed": 2, "turn_cap": 1}
    assert st["trajectories"] == 2 and st["replays"] == 1
    assert st["table3"][0].startswith("Table 3")


def test_queue_shows_the_recorded_items(client: TestClient) -> None:
    """`record` enqueues and works its items: the queue holds each one as done."""
    q = get(client, "/api/queue")
    assert q["available"] is True
    assert q["counts"] == {"done:completed": 2, "done:turn_cap": 1}
    assert q["remaining"] == 0 and q["workers"] == []


@pytest.mark.parametrize(
    "path",
    ["/api/sessions/nope", "/api/sessions/nope/events?after=0", "/api/replays/nope",
     "/api/sessions/nope/export", "/static/nope.js"],
)  # fmt: skip
def test_not_found(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_pages_are_shells_with_the_security_headers(client: TestClient, corpus: Corpus) -> None:
    for path in ["/", "/sessions", f"/sessions/{corpus.xss}", f"/replays/{corpus.replay_id}",
                 f"/compare?a={corpus.xss}&b={corpus.shell}"]:  # fmt: skip
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "http" not in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert '<script src="/static/' in r.text and "cdn" not in r.text.lower()


@pytest.mark.parametrize("host", ["evil.example", "evil.example:7575", "127.0.0.1.nip.io", ""])
def test_foreign_host_header_is_refused(client: TestClient, host: str) -> None:
    r = client.get("/api/sessions", headers={"host": host})
    assert r.status_code == 400
    assert "Invalid Host header" in r.text


@pytest.mark.parametrize("host", ["127.0.0.1:7575", "localhost:7575", "[::1]:7575", "LOCALHOST"])
def test_loopback_host_header_is_accepted(client: TestClient, host: str) -> None:
    assert client.get("/api/sessions", headers={"host": host}).status_code == 200


def _log_state(url: str) -> tuple[int, int, list[tuple[str, int]]]:
    with open_store(url) as store:
        events = list(store.iter_all(0, batch=5000))
        heads = [(s.stream_id, s.version) for s in store.streams()]
    return len(events), events[-1].position, heads


def test_the_viewer_never_appends(corpus: Corpus) -> None:
    before = _log_state(corpus.url)
    viewer = open_viewer(corpus.url)
    try:
        settle(viewer)
        with TestClient(viewer.app, base_url=BASE) as c:
            events = c.get(f"/api/sessions/{corpus.xss}").json()["events"]
            call = next(e for e in events if e["type"] == "fs_diff")["data"]["call_id"]
            for path in [
                "/", "/sessions", "/api/sessions", "/api/sessions?q=x&tool=exec&audit=flagged",
                f"/api/sessions/{corpus.xss}", f"/api/sessions/{corpus.xss}/events?after=3",
                f"/api/sessions/{corpus.xss}/diff?call={call}&path=notes.txt",
                f"/api/sessions/{corpus.xss}/export?format=middle",
                f"/api/replays/{corpus.replay_id}", "/api/stats", "/api/queue", "/api/index",
            ]:  # fmt: skip
                assert c.get(path).status_code == 200, path
            assert c.post("/api/sessions").status_code == 405
        viewer.app.state.indexer.refresh()
    finally:
        close_viewer(viewer)
    assert _log_state(corpus.url) == before


def test_index_follows_a_new_session_and_keeps_the_replay_verdict(
    db_url: str, tmp_path: Path
) -> None:
    """Incremental catch-up: a session recorded after the first run appears; refolding a
    replayed session (a rebuild) keeps its verdict."""
    from tests.viewer.conftest import replay

    first = record(db_url, tmp_path, "viewer-drift", "--max-turns", "1")
    viewer = open_viewer(db_url)
    try:
        with TestClient(viewer.app, base_url=BASE) as c:
            settle(viewer)
            assert ids(c.get("/api/sessions").json()) == [first]
            second = record(db_url, tmp_path, "viewer-xss")
            replay(db_url, second)
            settle(viewer)
            body = c.get("/api/sessions?replay=any").json()
            assert ids(body) == [second]
            assert c.get("/api/sessions").json()["total"] == 2
    finally:
        close_viewer(viewer)


def test_search_with_more_matches_than_a_list_holds(
    client: TestClient, corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past MATCH_LIST_MAX matching sessions the search stays a sub-select: same answer."""
    from ise_es.projections import sessionindex

    monkeypatch.setattr(sessionindex, "MATCH_LIST_MAX", 0)
    body = get(client, "/api/sessions?q=notes&status=completed")
    assert ids(body) == [corpus.xss] and body["counts"] == {"completed": 1}
