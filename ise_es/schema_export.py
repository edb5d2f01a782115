"""JSON Schemas generated from the msgspec types, checked in under schemas/.

`ise-es schemas export` writes them; a test fails when the checked-in copies are stale, so the
published contract can never silently drift from the code.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import msgspec

from ise_es.events import EVENT_TYPES, Event

__all__ = ["generated_schemas", "write_schemas"]


def _dump(schema: object) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def generated_schemas() -> dict[str, str]:
    """File name -> JSON text, for every schema this module owns."""
    events_schema = msgspec.json.schema(Event)
    events_schema["$comment"] = (
        "ise-es event payloads (a tagged union on `type`). Schema versions per type: "
        + ", ".join(f"{tag}=v{cls.schema_version}" for tag, cls in sorted(EVENT_TYPES.items()))
    )
    return {"events.schema.json": _dump(events_schema)}


def write_schemas(directory: Path) -> list[Path]:
    """Write every generated schema atomically (temp file + rename); returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in generated_schemas().items():
        target = directory / name
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, target)
        written.append(target)
    return written
