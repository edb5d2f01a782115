"""The store conformance suite on PostgreSQL (on in CI, never skipped: marker `postgres`)."""

from __future__ import annotations

import pytest

from tests.store.conformance import StoreConformance


@pytest.mark.postgres
class TestPostgresStore(StoreConformance):
    backend = "postgres"
