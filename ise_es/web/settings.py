"""The web settings of a recording (`--web live|fixture|off` and the `--web-*` options), and the
gateway they open for one session.

`WebSettings` is what the recorder receives (in `SessionPlan.web`); `spec()` is what
SessionStarted records of it: the mode, the provider and its endpoint, the policy entries, the
ports and the limits. Never the API key (read from the environment variable the settings name,
`with_key`) and never the store's URL (it may hold a password; only used to refuse the store's
own address).
"""

from __future__ import annotations

import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from ise_es.errors import ConfigError
from ise_es.events import WebSpec
from ise_es.tools.search import PROVIDERS
from ise_es.tools.web import FixtureWebGateway, WebGateway
from ise_es.web.egress import DEFAULT_PORTS, EgressPolicy, EgressRule
from ise_es.web.live import (
    Connector,
    LiveWebGateway,
    Resolver,
    SearchBackend,
    WebLimits,
    system_connector,
    system_resolver,
)

__all__ = ["SEARCH_PROVIDERS", "WebMode", "WebSettings", "store_endpoint"]

WebMode = Literal["fixture", "live", "off"]
SEARCH_PROVIDERS = ("searxng", "serper", "brave")


def store_endpoint(db_url: str | None) -> tuple[str, int] | None:
    """The (host, port) a network store listens on, from its URL; None for SQLite and for a
    PostgreSQL reached over a Unix socket."""
    if not db_url:
        return None
    parts = urllib.parse.urlsplit(db_url)
    if not parts.scheme.startswith(("postgresql", "postgres")):
        return None
    query = dict(urllib.parse.parse_qsl(parts.query))
    host = parts.hostname or query.get("host", "")
    if not host or host.startswith("/"):
        return None
    try:
        port = parts.port or int(query.get("port", 5432))
    except ValueError:
        return None
    return host, port


@dataclass(frozen=True)
class WebSettings:
    """How sessions reach the web. Default: the offline fixture web (no traffic at all)."""

    mode: WebMode = "fixture"
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    ports: tuple[int, ...] = DEFAULT_PORTS
    search: str | None = None
    """searxng | serper | brave; None: live mode has no web search."""
    search_url: str | None = None
    """The provider's endpoint (required for searxng; the public API otherwise)."""
    search_key_env: str | None = None
    """The environment variable holding the key (default: the provider's usual name)."""
    search_key: str | None = field(default=None, repr=False, compare=False)
    store_url: str | None = field(default=None, repr=False, compare=False)
    limits: WebLimits = field(default_factory=WebLimits)

    def validated(self) -> WebSettings:
        """Raises ConfigError for a bad entry, provider or endpoint, naming the option."""
        if self.mode not in ("fixture", "live", "off"):
            raise ConfigError(f"--web must be live, fixture or off, not {self.mode!r}")
        for entry in (*self.allow, *self.deny):
            EgressRule.parse(entry)
        for port in self.ports:
            if not 0 < port < 65536:
                raise ConfigError(f"--web-port {port} is not a port number (1-65535)")
        if self.search is None:
            return self
        if self.search not in SEARCH_PROVIDERS:
            raise ConfigError(
                f"--web-search {self.search!r} is not a provider ise-es knows "
                f"({', '.join(SEARCH_PROVIDERS)})"
            )
        url = self.endpoint()
        if url is None:
            raise ConfigError(
                f"--web-search {self.search} needs --web-search-url (e.g. "
                "http://127.0.0.1:8888/search for a SearXNG instance)"
            )
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--web-search-url {url!r} is not an http(s) URL")
        return self

    def endpoint(self) -> str | None:
        if self.search is None:
            return None
        return self.search_url or PROVIDERS[self.search].default_url

    def key_env(self) -> str | None:
        if self.search is None:
            return None
        return self.search_key_env or PROVIDERS[self.search].key_env

    def with_key(self, environ: Mapping[str, str] | None) -> WebSettings:
        """These settings with the provider's key read from `environ`.

        Raises:
            ConfigError: live mode with a provider that needs a key, and the variable is unset.
        """
        name = self.key_env()
        if self.mode != "live" or name is None:
            return self
        key = (environ or {}).get(name)
        if not key and PROVIDERS[self.search or ""].key_env is not None:
            raise ConfigError(
                f"--web-search {self.search} needs an API key in ${name} (set it, or name "
                "another variable with --web-search-key-env)"
            )
        return replace(self, search_key=key or None)

    def spec(self) -> WebSpec:
        """What SessionStarted records."""
        if self.mode != "live":
            return WebSpec(mode=self.mode)
        return WebSpec(
            mode=self.mode,
            search=self.search,
            search_url=self.endpoint(),
            allow=list(self.allow),
            deny=list(self.deny),
            ports=sorted(set(self.ports)),
            limits=self.limits.describe(),
        )

    def policy(self, resolver: Resolver = system_resolver) -> EgressPolicy:
        """The egress policy, with the store's own addresses resolved now (once per session)."""
        store = store_endpoint(self.store_url)
        pinned: list[tuple[str, int]] = []
        if store is not None:
            host, port = store
            try:
                pinned = [(address, port) for address in resolver(host, port)]
            except OSError:
                pinned = []  # an unresolvable store cannot be reached by the agent either
            pinned.append((host, port))
        return EgressPolicy.from_entries(
            allow=self.allow,
            deny=self.deny,
            ports=self.ports,
            store=pinned,
            store_name=store,
        )

    def open_gateway(
        self,
        *,
        resolver: Resolver = system_resolver,
        connector: Connector = system_connector,
        ssl_context: ssl.SSLContext | None = None,
    ) -> WebGateway | None:
        """A new gateway for one session (None when the web is off). The caller closes it."""
        if self.mode == "off":
            return None
        if self.mode == "fixture":
            return FixtureWebGateway()
        endpoint = self.endpoint()
        search = (
            SearchBackend(PROVIDERS[self.search], endpoint, self.search_key)
            if self.search is not None and endpoint is not None
            else None
        )
        return LiveWebGateway(
            self.policy(resolver),
            search=search,
            limits=self.limits,
            resolver=resolver,
            connector=connector,
            ssl_context=ssl_context,
        )
