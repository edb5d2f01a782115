"""The viewer's ASGI application: pages, JSON API, static assets, and the guards around them.

Guards, because the viewer shows untrusted text (an agent can print `<script>`) and listens on
a port any web page in the user's browser can aim at:
- Host header check: only the names the server was started for (loopback by default), so a
  DNS-rebinding page (`evil.example` resolving to 127.0.0.1) gets a 400, not the corpus.
- A Content-Security-Policy that allows scripts, styles and fetches from this origin only, no
  inline script or style, no frames; `nosniff` so a blob served as text stays text.
- The front-end builds the DOM with `textContent` and never assigns HTML it did not write.

The store is only read: the one thing the server writes is its own read model (the session
index, `ise_es.projections.sessionindex`), which a background thread keeps caught up with the
log so the session list can page 25k sessions without folding them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ise_es.projections.readmodel import catch_up
from ise_es.projections.sessionindex import SessionIndexModel
from ise_es.store.base import EventStore
from ise_es.store.engine import Engines

__all__ = ["CSP", "Indexer", "create_app", "default_hosts"]

HERE = Path(__file__).resolve().parent
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
LOOPBACK = ("127.0.0.1", "localhost", "::1")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def default_hosts(bind_host: str, extra: tuple[str, ...] = ()) -> set[str]:
    """Host names a request may name: loopback, the bound address unless it is a wildcard,
    and any the user allowed explicitly (needed behind a wildcard bind)."""
    hosts = set(LOOPBACK)
    if bind_host not in ("0.0.0.0", "::", ""):
        hosts.add(bind_host.strip("[]").lower())
    hosts.update(h.strip("[]").lower() for h in extra)
    return hosts


def _host_of(header: str) -> str:
    """`[::1]:7575` -> `::1`; `Example.org:80` -> `example.org`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else ""
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """ASGI middleware: refuse foreign Host headers, add the security headers."""

    def __init__(self, app: ASGIApp, hosts: set[str]) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = ""
        for name, value in scope.get("headers", []):
            if name == b"host":
                host = _host_of(value.decode("latin-1"))
                break
        if host not in self.hosts:
            body = b"Invalid Host header: start ise-es serve with --allow-host NAME to allow it\n"
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                        *SECURITY_HEADERS,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Indexer:
    """Keeps the session index caught up with the log, on a background thread.

    `refresh()` runs one catch-up (the tests and the benchmark call it directly); concurrent
    calls wait for the running one. Failures are kept in `status` and retried next round.
    """

    def __init__(self, store: EventStore, engines: Engines, interval: float | None = 2.0) -> None:
        self.store = store
        self.engines = engines
        self.model = SessionIndexModel(store)
        self.interval = interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.position = 0
        self.runs = 0
        self.running = False
        self.last_seconds: float | None = None
        self.error: str | None = None
        self.events_seen = 0

    def refresh(self) -> None:
        with self._lock:
            self.running = True
            try:
                result = catch_up(self.store, self.model, progress=self._progress)
                self.position = result.position
                self.last_seconds = round(result.seconds, 3)
                self.error = None
            except Exception as e:  # kept for /api/index; the next round retries
                self.error = f"{type(e).__name__}: {e}"
            finally:
                self.running = False
                self.runs += 1

    def _progress(self, events: int) -> None:
        self.events_seen = events

    def status(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "runs": self.runs,
            "running": self.running,
            "events_read": self.events_seen,
            "last_seconds": self.last_seconds,
            "error": self.error,
            "interval_s": self.interval,
        }

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.refresh()
            wait = (self.interval or 0) - (time.monotonic() - started)
            self._stop.wait(max(0.2, wait))

    def start(self) -> None:
        if self.interval is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="ise-es-index", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None


def create_app(
    store: EventStore,
    engines: Engines,
    *,
    hosts: set[str] | None = None,
    index_interval: float | None = 2.0,
) -> Any:
    """The Starlette application (wrapped in the Host/CSP guard).

    Args:
        hosts: Host header names accepted (default: loopback only).
        index_interval: seconds between session-index catch-ups; None runs none in the
            background (call `app.state.indexer.refresh()`).
    """
    from starlette.applications import Starlette
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from ise_es.projections.audit import load_lexicon
    from ise_es.viewer import api

    indexer = Indexer(store, engines, index_interval)

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        indexer.start()
        try:
            yield
        finally:
            indexer.stop()

    routes = [
        Route("/", api.page("corpus")),
        Route("/sessions", api.page("sessions")),
        Route("/sessions/{session_id}", api.page("session")),
        Route("/replays/{replay_id}", api.page("replay")),
        Route("/compare", api.page("compare")),
        Route("/favicon.ico", api.favicon),
        *api.routes(),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.store = store
    app.state.engines = engines
    app.state.indexer = indexer
    app.state.lexicon = load_lexicon()
    app.state.stats_cache = {}
    guarded = Guard(app, hosts or set(LOOPBACK))
    guarded.state = app.state  # type: ignore[attr-defined]
    return guarded
