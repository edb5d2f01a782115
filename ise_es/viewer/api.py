"""The viewer's routes: the JSON API under /api/ (the pages use it; users script against it)
and the HTML shells of the pages.

Handlers are plain functions: Starlette runs them on its thread pool, where the store's
blocking reads belong. Every answer is JSON from msgspec, except blobs (text/plain, nosniff)
and pages (a static shell whose script fetches the API).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ise_es.errors import BlobNotFound, ConfigError
from ise_es.projections.formats import Unrepresentable, render, resolve_options
from ise_es.projections.session import fold_session
from ise_es.projections.sessionindex import (
    SessionFilter,
    index_row,
    index_summaries,
    query_sessions,
)
from ise_es.projections.stats import corpus_stats
from ise_es.viewer import views
from ise_es.viewer.queue import queue_json

__all__ = ["page", "routes"]

TEMPLATE = (Path(__file__).resolve().parent / "templates" / "page.html").read_text()
TITLES = {
    "corpus": "Corpus",
    "sessions": "Sessions",
    "session": "Session",
    "replay": "Replay",
    "compare": "Compare",
}
DIGEST = re.compile(r"^[0-9a-f]{64}$")
_encoder = msgspec.json.Encoder()


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        _encoder.encode(data),
        status_code=status,
        media_type="application/json",
        headers={"cache-control": "no-store"},
    )


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


def _int(request: Request, name: str, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise _BadRequest(f"{name} must be an integer, not {raw!r}") from None


class _BadRequest(Exception):
    pass


Handler = Callable[[Request], Response]


def _guarded(handler: Handler) -> Handler:
    """Library errors to HTTP: bad parameters 400, missing things 404."""

    def run(request: Request) -> Response:
        try:
            return handler(request)
        except _BadRequest as e:
            return _error(400, str(e))
        except (views.NotFound, BlobNotFound) as e:
            return _error(404, str(e))
        except ConfigError as e:
            return _error(400, str(e))

    run.__name__ = handler.__name__
    return run


def page(name: str) -> Handler:
    html = TEMPLATE.replace("{{page}}", name).replace("{{title}}", TITLES[name])

    def show(_request: Request) -> Response:
        return HTMLResponse(html, headers={"cache-control": "no-store"})

    return show


FAVICON = (Path(__file__).resolve().parent / "static" / "favicon.svg").read_bytes()


def favicon(_request: Request) -> Response:
    """Browsers ask for /favicon.ico on every page, the blob views included."""
    return Response(FAVICON, media_type="image/svg+xml", headers={"cache-control": "max-age=86400"})


def _state(request: Request) -> Any:
    return request.app.state


def list_sessions(request: Request) -> Response:
    p = request.query_params
    try:
        result = query_sessions(
            _state(request).engines,
            SessionFilter(
                status=p.get("status") or None,
                q=p.get("q") or None,
                tool=p.get("tool") or None,
                audit=p.get("audit") or None,
                replay=p.get("replay") or None,
                intent=p.get("intent") or None,
                min_turns=_int(request, "min_turns", None),
                sort=p.get("sort") or "-started_at",
                limit=_int(request, "limit", 50) or 50,
                offset=_int(request, "offset", 0) or 0,
            ),
        )
    except ValueError as e:
        raise _BadRequest(str(e)) from e
    body = msgspec.to_builtins(result)
    body["index"] = _state(request).indexer.status()
    return _json(body)


def _lean(request: Request) -> bool:
    return request.query_params.get("lean") in ("1", "true", "yes")


def show_session(request: Request) -> Response:
    state = _state(request)
    body = views.session_json(
        state.store, request.path_params["session_id"], state.lexicon, lean=_lean(request)
    )
    row = index_row(state.engines, body["session_id"])
    body["index"] = msgspec.to_builtins(row) if row is not None else None
    return _json(body)


def session_events(request: Request) -> Response:
    after = _int(request, "after", 0) or 0
    return _json(
        views.events_after(
            _state(request).store, request.path_params["session_id"], after, lean=_lean(request)
        )
    )


def session_diff(request: Request) -> Response:
    call = request.query_params.get("call", "")
    path = request.query_params.get("path", "")
    if not call or not path:
        raise _BadRequest("diff needs call=CALL_ID and path=PATH")
    return _json(
        views.file_diff(_state(request).store, request.path_params["session_id"], call, path)
    )


def session_export(request: Request) -> Response:
    options = resolve_options(request.query_params.get("format", "openai"))
    store = _state(request).store
    session_id = request.path_params["session_id"]
    events = store.read_stream(views.session_stream(session_id))
    if not events:
        raise views.NotFound(f"no session {session_id!r}")
    try:
        samples = render(fold_session(events), options)
    except Unrepresentable as e:
        return _error(422, f"{options.format} cannot express this session: {e}")
    if not samples:
        raise views.NotFound("nothing to export: the session has no assistant message")
    return _json(samples[0])


def show_replay(request: Request) -> Response:
    return _json(views.replay_json(_state(request).store, request.path_params["replay_id"]))


def stats(request: Request) -> Response:
    """The corpus figures over the session index, cached until the index moves."""
    state = _state(request)
    status = request.query_params.get("status", "completed")
    key = state.indexer.position
    cached = state.stats_cache.get(status)
    if cached is None or cached[0] != key:
        summaries, replays = index_summaries(state.engines)
        report = corpus_stats(summaries, replays, status=status)
        body = msgspec.to_builtins(report)
        body["table3"] = report.lines()
        cached = (key, body)
        state.stats_cache[status] = cached
    return _json({**cached[1], "index": state.indexer.status()})


def queue(request: Request) -> Response:
    return _json(queue_json(_state(request).store))


def index_status(request: Request) -> Response:
    return _json(_state(request).indexer.status())


def blob(request: Request) -> Response:
    digest = request.path_params["digest"]
    if not DIGEST.match(digest):
        raise _BadRequest("a blob digest is 64 hex digits")
    data = _state(request).store.get_blob(digest)
    headers = {"cache-control": "private, max-age=86400"}
    if request.query_params.get("download"):
        headers["content-disposition"] = f'attachment; filename="{digest[:16]}.txt"'
    return Response(data, media_type="text/plain; charset=utf-8", headers=headers)


def routes() -> list[Route]:
    def r(path: str, handler: Handler) -> Route:
        return Route(path, _guarded(handler), methods=["GET"])

    return [
        r("/api/sessions", list_sessions),
        r("/api/sessions/{session_id}", show_session),
        r("/api/sessions/{session_id}/events", session_events),
        r("/api/sessions/{session_id}/diff", session_diff),
        r("/api/sessions/{session_id}/export", session_export),
        r("/api/replays/{replay_id}", show_replay),
        r("/api/stats", stats),
        r("/api/queue", queue),
        r("/api/index", index_status),
        r("/api/blobs/{digest}", blob),
    ]
