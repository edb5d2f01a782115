"""Time the web viewer over the benchmark corpus: the session list's first page and a 565-turn
session rendered in headless Chromium.

    python benchmarks/viewer_bench.py --db sqlite:///viewer-corpus.db              # 23,826 sessions
    python benchmarks/viewer_bench.py --db sqlite:///small.db --sessions 2000

Steps (the corpus is built once with benchmarks/make_corpus.py and reused when present):

  index      the session index (the list's read model) caught up (from position 0 the first
             time, or with --rebuild-index), then again with nothing new
  baseline   what `ise-es sessions list` does today: fold every SessionStarted/SessionEnded
  list       GET /api/sessions first page over real HTTP (uvicorn on 127.0.0.1), p50 and max
             of repeated requests, plain and with each kind of filter   target <= 300 ms
  page       /sessions in Chromium: navigation to rows drawn
  long       a 565-turn session (two tool calls a turn, reasoning, output chunks) opened in
             Chromium: navigation start to the last event rendered       target < 2 s

Durability as configured by the store (SQLite synchronous=FULL, PostgreSQL defaults).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ise_es.events import (  # noqa: E402
    AgentMessage,
    Event,
    FileChange,
    FsDiff,
    ModelCall,
    OutputChunk,
    SessionEnded,
    SessionStarted,
    ToolCall,
    ToolCallFinished,
    ToolCallStarted,
    Usage,
    UserTurn,
)

LONG_ID = "long565turns0000"
LONG_TURNS = 565


def long_session(outputs: list[str]) -> list[Event]:
    """565 user turns, each: reasoning + two exec calls (stdout chunks, one file change every
    fifth turn), then an answer."""
    events: list[Event] = [
        SessionStarted(
            session_id=LONG_ID,
            intent_id="intent_long565",
            intent="A very long session: keep checking the service logs and fixing what breaks.",
            sandbox_backend="local",
            template="empty",
        )
    ]
    index = 0
    for turn in range(1, LONG_TURNS + 1):
        events.append(UserTurn(turn=turn, text=f"Turn {turn}: check the logs again and fix it."))
        calls = [
            ToolCall(
                id=f"call_{turn}_{k}",
                name="exec",
                arguments=json.dumps({"command": f"grep -n error logs/{turn}-{k}.log"}),
            )
            for k in range(2)
        ]
        events.append(
            ModelCall(role="agent", model="bench", usage=Usage(prompt_tokens=900, total_tokens=960))
        )
        events.append(
            AgentMessage(
                turn=turn, step=0, reasoning=f"Look at the logs of turn {turn}.", tool_calls=calls
            )
        )
        for k, call in enumerate(calls):
            text = outputs[(turn * 2 + k) % len(outputs)]
            events.append(
                ToolCallStarted(
                    call_id=call.id, tool="exec", arguments=call.arguments, turn=turn, index=index
                )
            )
            events.append(OutputChunk(call_id=call.id, stream="stdout", seq=0, data=text.encode()))
            events.append(
                ToolCallFinished(
                    call_id=call.id,
                    tool="exec",
                    result_text=text,
                    exit_code=0 if k else 1,
                    duration_ms=12.5,
                    stdout_size=len(text),
                )
            )
            if turn % 5 == 0 and k == 0:
                events.append(
                    FsDiff(
                        call_id=call.id,
                        changes=[FileChange(path=f"fix-{turn}.txt", kind="added", size=10)],
                    )
                )
            index += 1
        events.append(AgentMessage(turn=turn, step=1, text=f"Turn {turn} is fixed."))
    events.append(SessionEnded(status="completed", user_turns=LONG_TURNS, tool_calls=index))
    return events


def ensure_corpus(url: str, sessions: int) -> dict[str, Any]:
    import make_corpus

    from ise_es.store import migrate
    from ise_es.store.sql import open_store

    migrate.upgrade(url)
    with open_store(url) as store:
        have = len(store.streams(stream_type="session"))
    built: dict[str, Any] = {"reused": have > 0}
    if have == 0:
        trajectories = max(1, round(sessions / 1.03))
        built.update(make_corpus.build(url, trajectories))
    with open_store(url) as store:
        if not store.read_stream(f"session-{LONG_ID}", 1, to_version=1):
            outputs = make_corpus.Generator(7).outputs
            store.append(f"session-{LONG_ID}", long_session(outputs), 0)
        built["sessions"] = len(store.streams(stream_type="session"))
    return built


def timed(fn: Any, repeat: int) -> tuple[float, float, Any]:
    times = []
    result = None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), max(times), result


def chromium() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
        f"--user-data-dir={tempfile.mkdtemp(prefix='ise-es-bench-')}",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def wait_for(driver: Any, script: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(script)


def main() -> None:
    args = parse_args()
    from ise_es.store.engine import connect_engines
    from ise_es.store.sql import open_store
    from ise_es.viewer.app import create_app

    t = time.perf_counter()
    corpus = ensure_corpus(args.db, args.sessions)
    print(
        f"corpus     {corpus['sessions']} sessions ({'reused' if corpus['reused'] else 'built'}"
        f" in {time.perf_counter() - t:.1f} s)"
    )
    engines = connect_engines(args.db)  # before the store: see ise_es/commands/serve.py
    store = open_store(args.db)
    app = create_app(store, engines, index_interval=None)
    time_index(store, app.state.indexer, rebuild=args.rebuild_index)
    port = 7590
    server, thread = serve(app, port)
    base = f"http://127.0.0.1:{port}"
    try:
        time_api(base, args.repeat)
        time_pages(base)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        engines.dispose()
        store.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", required=True, help="store URL (built here when empty)")
    parser.add_argument("--sessions", type=int, default=23826, help="sessions to build")
    parser.add_argument("--repeat", type=int, default=20, help="requests per list query")
    parser.add_argument(
        "--rebuild-index",
        action="store_true",
        help="time the session index from position 0 (default: catch up, cheap when current)",
    )
    return parser.parse_args()


def time_index(store: Any, indexer: Any, *, rebuild: bool) -> None:
    """The session index brought up to date (then again, with nothing new), and the list it
    replaces (folding the log's starts and ends) for a baseline."""
    from ise_es.projections.readmodel import catch_up
    from ise_es.simulate.browse import list_sessions

    first = catch_up(store, indexer.model, rebuild=rebuild)
    how = "rebuilt from 0" if first.rebuilt else "caught up"
    print(
        f"index      {how}: {first.seconds:.1f} s, {first.events} events, {first.sessions} "
        f"sessions ({first.events / max(first.seconds, 1e-9):.0f} ev/s)"
    )
    again = catch_up(store, indexer.model)
    print(f"index      nothing new: {again.seconds * 1000:.0f} ms")
    indexer.position = again.position
    base_p50, _, rows = timed(lambda: list_sessions(store), 1)
    print(
        f"baseline   sessions list (fold starts/ends of the log): {base_p50 * 1000:.0f} ms "
        f"for {len(rows)} rows"
    )


def serve(app: Any, port: int) -> tuple[Any, threading.Thread]:
    """The viewer on 127.0.0.1:`port` in a thread, once it accepts requests."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread


_QUERIES = {
    "first page": "/api/sessions?limit=50",
    "page 100": "/api/sessions?limit=50&offset=4950",
    "status=turn_cap": "/api/sessions?limit=50&status=turn_cap",
    "tool=cron": "/api/sessions?limit=50&tool=cron",
    "audit=flagged": "/api/sessions?limit=50&audit=flagged",
    "sort=-tool_calls": "/api/sessions?limit=50&sort=-tool_calls",
    "min_turns=10": "/api/sessions?limit=50&min_turns=10",
    "q=ghp_ (search)": "/api/sessions?limit=50&q=ghp_",
}


def time_api(base: str, repeat: int) -> None:
    """p50 and worst time of each list query over HTTP, and the size of the long session."""
    import httpx

    with httpx.Client(base_url=base, timeout=120) as client:
        for name, path in _QUERIES.items():

            def get(path: str = path) -> Any:
                r = client.get(path)
                r.raise_for_status()
                return r.json()

            p50, worst, body = timed(get, 3 if "search" in name else repeat)
            target = "  (target <= 300 ms)" if name == "first page" else ""
            print(
                f"list       {name:18} p50 {p50 * 1000:6.1f} ms  max {worst * 1000:6.1f} ms"
                f"  total {body['total']}{target}"
            )
        r = client.get(f"/api/sessions/{LONG_ID}?lean=1")
        print(
            f"long       /api/sessions/{LONG_ID}?lean=1: {len(r.content) / 1e6:.1f} MB, "
            f"{len(r.json()['events'])} events"
        )


def time_pages(base: str) -> None:
    """The sessions page and the long session's page in Chromium, median of 3 loads each."""
    driver = chromium()
    try:
        loads = []
        for _ in range(3):
            driver.get(f"{base}/sessions")
            wait_for(driver, "return document.body.dataset.loaded === '1'")
            loads.append(driver.execute_script("return performance.now()"))
        print(
            f"page       /sessions in Chromium, navigation to rows drawn: "
            f"median {statistics.median(loads):.0f} ms"
        )
        renders = [_render_long(driver, base) for _ in range(3)]
        done, first_slice, fetched, complete, turns = sorted(renders)[1]
        print(
            f"long       565-turn session in Chromium (median of 3): JSON in at {fetched} ms, "
            f"first turns drawn at {first_slice} ms, page rendered (first and last turns "
            f"drawn, the rest placed) at {done} ms (target < 2000 ms); all {turns} turns "
            f"drawn in the background by {complete} ms"
        )
    finally:
        driver.quit()


def _render_long(driver: Any, base: str) -> tuple[int, int, int, int, int]:
    """(rendered, first slice drawn, JSON fetched, all turns drawn) in ms, and the turns."""
    driver.get(f"{base}/sessions/{LONG_ID}")
    done = wait_for(driver, "return document.body.dataset.rendered")
    complete = wait_for(driver, "return document.body.dataset.complete", 120)
    first_slice = driver.execute_script("return document.body.dataset.firstSlice")
    fetched = driver.execute_script("return document.body.dataset.fetched")
    turns = driver.execute_script("return document.querySelectorAll('.turn:not(.pending)').length")
    return int(done), int(first_slice), int(fetched), int(complete), int(turns)


if __name__ == "__main__":
    main()
