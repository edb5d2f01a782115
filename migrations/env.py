"""Alembic environment: migrations run on the store's own write engine (dialect settings
included), against the metadata the code expects."""

from __future__ import annotations

import importlib
import importlib.util

from alembic import context

from ise_es.store.engine import connect_engines
from ise_es.store.schema import metadata

# Projection tables live beside their projections but share the store's metadata.
if importlib.util.find_spec("ise_es.projections.tables") is not None:
    importlib.import_module("ise_es.projections.tables")

config = context.config
url = config.attributes.get("ise_es_url") or config.get_main_option("sqlalchemy.url")
engines = connect_engines(str(url))
try:
    with engines.write.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
finally:
    engines.dispose()
