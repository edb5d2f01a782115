"""Turn the session id a person typed into the stream it names.

One resolver for every command that takes a session id (`sessions show`, `replay`), so a prefix
that works in one works in the other and an ambiguous one fails the same way everywhere.
"""

from __future__ import annotations

from ise_es.errors import InvalidInput
from ise_es.store.base import EventStore

__all__ = ["MIN_PREFIX", "SHOWN_CANDIDATES", "resolve_session_stream"]

MIN_PREFIX = 4
"""Shorter prefixes are not looked up: with 16 hex digits per id, 4 already pick one session
among thousands, and a 1-character prefix would read the whole stream table."""

SHOWN_CANDIDATES = 5


def resolve_session_stream(store: EventStore, session_id: str) -> str:
    """`abc123...`, `session-abc123...` or a unique prefix of at least 4 characters -> stream id.

    An exact id wins over a prefix of a longer one.

    Raises:
        InvalidInput: no such session, or the prefix is ambiguous (the message lists a few of
            the sessions it matches).
    """
    sid = session_id.strip().removeprefix("session-")
    if not sid:
        raise InvalidInput("empty session id: `ise-es sessions list` shows the ids")
    stream = f"session-{sid}"
    if store.read_stream(stream, 1, to_version=1):
        return stream
    if len(sid) < MIN_PREFIX:
        raise InvalidInput(
            f"no session {session_id!r}: give the full id or at least {MIN_PREFIX} of its first "
            "characters (`ise-es sessions list` shows the ids)"
        )
    # LIKE is case-insensitive for ASCII on SQLite and not on PostgreSQL: compare here.
    matches = [s.stream_id for s in store.streams(stream) if s.stream_id.startswith(stream)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(m.removeprefix("session-") for m in matches[:SHOWN_CANDIDATES])
        more = len(matches) - SHOWN_CANDIDATES
        tail = f" and {more} more" if more > 0 else ""
        raise InvalidInput(
            f"session id {session_id!r} is ambiguous: it matches {shown}{tail}; "
            "give more characters"
        )
    raise InvalidInput(f"no session {session_id!r}: `ise-es sessions list` shows the ids")
