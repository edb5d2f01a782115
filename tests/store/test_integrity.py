"""`verify` finds every kind of tampering: edited payloads, cut-off tails, edited heads."""

from __future__ import annotations

import sqlalchemy as sa
from click.testing import CliRunner

from cli import main
from ise_es.events import UserTurn
from ise_es.store.engine import connect_engines
from ise_es.store.sql import SqlEventStore


def fill(store: SqlEventStore) -> None:
    for name in ("a", "b", "c"):
        store.append(
            f"session-{name}", [UserTurn(turn=i, text=f"{name}{i}") for i in range(1, 5)], 0
        )


def run_sql(store: SqlEventStore, *statements: str) -> None:
    """Tamper as someone with database access would (a connection of their own, not the
    store's): triggers first."""
    engines = connect_engines(store.url)
    try:
        with engines.write.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engines.dispose()


def drop_triggers(store: SqlEventStore) -> list[str]:
    if store.dialect == "postgresql":
        return ["DROP TRIGGER events_append_only ON events"]
    return ["DROP TRIGGER events_no_update", "DROP TRIGGER events_no_delete"]


def test_edited_payload_is_named_by_stream_and_version(store: SqlEventStore) -> None:
    fill(store)
    run_sql(
        store,
        *drop_triggers(store),
        "UPDATE events SET payload = replace(payload, 'b3', 'XX') "
        "WHERE stream_id = 'session-b' AND version = 3",
    )
    report = store.verify()
    assert report.problems == [
        "stream session-b version 3: hash mismatch (the event or one before it was altered)"
    ]


def test_cut_off_tail_is_caught_by_the_head(store: SqlEventStore) -> None:
    fill(store)
    run_sql(
        store,
        *drop_triggers(store),
        "DELETE FROM events WHERE stream_id = 'session-c' AND version = 4",
    )
    [problem] = store.verify().problems
    assert problem.startswith("stream session-c: head says version 4, chain ends at version 3")


def test_edited_head_is_caught(store: SqlEventStore) -> None:
    fill(store)
    run_sql(store, "UPDATE streams SET head_hash = 'f00' WHERE stream_id = 'session-a'")
    assert store.verify().problems[0].startswith("stream session-a: head says version 4")


def test_verify_command_exit_codes(store: SqlEventStore, db_url: str) -> None:
    fill(store)
    runner = CliRunner()
    ok = runner.invoke(main, ["verify", "--db", db_url])
    assert ok.exit_code == 0, ok.output
    assert "ok: 3 streams, 12 events verified" in ok.output
    run_sql(
        store,
        *drop_triggers(store),
        "UPDATE events SET payload = replace(payload, 'a1', 'zz') WHERE stream_id = 'session-a'",
    )
    bad = runner.invoke(main, ["verify", "--db", db_url])
    assert bad.exit_code == 1
    assert "BROKEN stream session-a version 1: hash mismatch" in bad.output
