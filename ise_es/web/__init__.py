"""The agent's real web: the egress policy (`egress`), the live gateway that enforces it
(`live`), and the settings that choose fixture, live or no web for a recording (`settings`).

The sandbox never has a network; this host-side gateway is the only way out, and everything it
does is recorded as HttpExchange events, so replay never needs it. The search providers' request
and answer shapes live in `ise_es.tools.search`, beside `web_search`, because replay parses
recorded answers with them.
"""

from __future__ import annotations

from ise_es.web.egress import DEFAULT_PORTS, EgressPolicy, EgressRule, special_purpose
from ise_es.web.live import (
    Connector,
    LiveWebGateway,
    Resolver,
    SearchBackend,
    WebLimits,
    system_connector,
    system_resolver,
)
from ise_es.web.settings import SEARCH_PROVIDERS, WebMode, WebSettings, store_endpoint

__all__ = [
    "DEFAULT_PORTS",
    "SEARCH_PROVIDERS",
    "Connector",
    "EgressPolicy",
    "EgressRule",
    "LiveWebGateway",
    "Resolver",
    "SearchBackend",
    "WebLimits",
    "WebMode",
    "WebSettings",
    "special_purpose",
    "store_endpoint",
    "system_connector",
    "system_resolver",
]
