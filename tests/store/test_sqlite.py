"""The store conformance suite on SQLite."""

from __future__ import annotations

from tests.store.conformance import StoreConformance


class TestSqliteStore(StoreConformance):
    backend = "sqlite"
