"""The exception tree of ise-es, in one place.

Every error the library raises derives from `IseEsError`; lower-layer errors (database driver,
Docker, HTTP) are translated where they happen with ``raise ... from e``. Only the CLI turns
these into user-facing messages and exit codes.

    IseEsError
    ├── ConfigError               bad URL, option or config file (exit 2)
    ├── InvalidInput              a user file that does not parse or validate (names file/line)
    │   └── OutputError           an output path that cannot or must not be written (exit 2)
    ├── EventError
    │   ├── InvalidEvent          a payload that does not match its event type
    │   └── UnknownEventType      a type or schema version this code does not know
    ├── StoreError
    │   ├── StoreUnavailable      the database cannot be reached or opened
    │   ├── SchemaOutOfDate       the database is not at the migration head
    │   ├── ConcurrencyError      a stale expected version: nothing was written
    │   ├── DuplicateEventId      an event id already stored with other content
    │   ├── BlobNotFound          a digest with no blob
    │   └── LeaseLost             an append fenced out: the writer's work-item lease is gone
    ├── SandboxError
    │   ├── SandboxUnavailable    the backend cannot start (missing tool, daemon down)
    │   └── TemplateError         unknown template or digest mismatch
    ├── ToolError                 a tool call that failed before running (bad arguments...)
    └── LLMError                  a model endpoint failed after retries
"""

from __future__ import annotations


class IseEsError(Exception):
    """Root of every ise-es error."""


class ConfigError(IseEsError):
    """A configuration value, URL or option is invalid."""


class InvalidInput(IseEsError):
    """A user-supplied file does not parse or validate; the message names file and line/field."""


class OutputError(InvalidInput):
    """An output path cannot be written, or must not be replaced (a device, FIFO, directory);
    the message names the path. See `ise_es.outputs`."""


class EventError(IseEsError):
    """An event cannot be encoded or decoded."""


class InvalidEvent(EventError):
    """A payload does not match its event type."""


class UnknownEventType(EventError):
    """An event type, or a schema version of it, that this code does not know."""


class StoreError(IseEsError):
    """The event store failed."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or opened."""


class SchemaOutOfDate(StoreError):
    """The database schema is not at the revision this code expects."""


class ConcurrencyError(StoreError):
    """An append's expected version is stale; nothing was written."""


class DuplicateEventId(StoreError):
    """An event id is already stored with different content."""


class BlobNotFound(StoreError):
    """No blob is stored under a digest."""


class LeaseLost(StoreError):
    """An append carried a work-item lease token that is no longer the item's: the lease
    expired and another worker reclaimed the item. Nothing was written (fencing)."""


class SandboxError(IseEsError):
    """A sandbox failed."""


class SandboxUnavailable(SandboxError):
    """A sandbox backend cannot start here (missing program, daemon down...)."""


class TemplateError(SandboxError):
    """A workspace template is unknown or does not match its digest."""


class ToolError(IseEsError):
    """A tool call failed before or outside running its command."""


class LLMError(IseEsError):
    """A model endpoint failed after all retries (or with an error that is not worth retrying).

    Carries what the recorder needs to write a ModelCall with `error` set: the endpoint, the
    last HTTP status (None for a connection error or timeout) and one dict per failed attempt
    (``{"status", "error", "waited_s"}``). `call` is the role client's description of the
    failed request (role, model, parameters, request bytes) when a client raised it.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        status: int | None = None,
        retries: list[dict[str, object]] | None = None,
        call: object | None = None,
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status
        self.retries: list[dict[str, object]] = list(retries or [])
        self.call = call
