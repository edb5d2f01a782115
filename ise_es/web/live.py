"""The live web gateway: the agent's requests to the real web, through the egress policy.

For every request (each redirect hop is its own request: `web_fetch` follows them one at a time)
the gateway

1. decides what it can from the URL alone (scheme, denied names), so a refused name is never
   looked up;
2. resolves the host once, with an injectable resolver, and checks every address it got;
3. connects to the checked address itself, through an injectable connect function, and sends
   the host name in the `Host` header and, for https, as SNI, verifying the certificate for the
   name. A second resolution (DNS rebinding) never happens, so the check and the connection are
   about the same address;
4. reads the body under the per-fetch and per-session limits (bytes, seconds, requests).

Nothing here raises for a network or policy failure: the answer is a `WebResponse` with `error`
(and `blocked` or `limit`), which `web_fetch` turns into a recorded tool error the agent sees.
There are no proxies (the standard library client ignores proxy variables) and no cookies.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ise_es.events import HttpSent
from ise_es.tools.search import PreparedRequest, SearchProvider, SearchQuery
from ise_es.tools.web import SEARCH_ENDPOINT, WebResponse
from ise_es.web.egress import EgressPolicy, IPAddress, parse_ip_literal

__all__ = [
    "Connector",
    "LiveWebGateway",
    "Resolver",
    "SearchBackend",
    "WebLimits",
    "system_connector",
    "system_resolver",
]

Resolver = Callable[[str, int], Sequence[str]]
"""(host name, port) -> addresses, in preference order. Raises OSError when it cannot."""
Connector = Callable[[tuple[str, int], float], socket.socket]
"""((address, port), timeout seconds) -> a connected TCP socket. Raises OSError."""

_KEPT_HEADERS = ("content-type", "content-length", "location", "last-modified", "etag")
_USER_AGENT = "ise-es-web-gateway/1"
_CHUNK = 64 * 1024
REDACTED = "[redacted]"


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def system_connector(address: tuple[str, int], timeout: float) -> socket.socket:
    return socket.create_connection(address, timeout=timeout)


@dataclass(frozen=True)
class WebLimits:
    """Per fetch and per session (one gateway serves one session)."""

    fetch_max_bytes: int = 4 << 20
    """A longer body is cut here (the agent is told it was truncated)."""
    fetch_seconds: float = 30.0
    """Connect, send and read one response within this time, or the fetch fails."""
    session_max_requests: int = 200
    session_max_bytes: int = 64 << 20
    session_seconds: float = 600.0
    """Time spent waiting on the web, summed over the session's requests."""

    def describe(self) -> dict[str, float]:
        return {
            "fetch_max_bytes": self.fetch_max_bytes,
            "fetch_seconds": self.fetch_seconds,
            "session_max_requests": self.session_max_requests,
            "session_max_bytes": self.session_max_bytes,
            "session_seconds": self.session_seconds,
        }


@dataclass(frozen=True)
class SearchBackend:
    """The configured search provider: its endpoint (chosen by the operator, so it is exempt
    from the address and port rules, though not from deny entries and the store) and key."""

    provider: SearchProvider
    url: str
    key: str | None = field(default=None, repr=False)


Opener = Callable[[], socket.socket]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to a checked address (`opener` connects to one): the name travels in
    the Host header only."""

    def __init__(self, host: str, port: int, *, opener: Opener, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._opener = opener

    def connect(self) -> None:
        self.sock = self.pinned = self._opener()


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to a checked address: SNI and certificate verification are for the host name."""

    def __init__(
        self, host: str, port: int, *, opener: Opener, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._opener = opener
        self._tls = context

    def connect(self) -> None:
        raw = self._opener()
        try:
            self.sock = self.pinned = self._tls.wrap_socket(raw, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise


class LiveWebGateway:
    """Real HTTP through `policy`, one instance per session (it keeps the session's budget)."""

    name = "live"

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        search: SearchBackend | None = None,
        limits: WebLimits | None = None,
        resolver: Resolver = system_resolver,
        connector: Connector = system_connector,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.search = search
        self.limits = limits or WebLimits()
        self._resolve = resolver
        self._connect = connector
        self._tls = ssl_context or ssl.create_default_context()
        self._clock = clock
        self._lock = threading.Lock()
        self.requests = 0
        self.bytes = 0
        self.seconds = 0.0

    def close(self) -> None:
        pass

    # -- entry point ----------------------------------------------------------------------

    def request(self, method: str, url: str, *, call_id: str) -> WebResponse:
        if url.startswith(SEARCH_ENDPOINT):
            return self._search(url)
        if method != "GET":
            return WebResponse(url=url, status=0, error=f"method {method} is not supported")
        parts = urllib.parse.urlsplit(url)
        return self._send(url, parts, PreparedRequest("GET", url), operator_configured=False)

    def _search(self, url: str) -> WebResponse:
        if self.search is None:
            return WebResponse(
                url=url,
                status=0,
                error="web search is not configured for the live web (the operator chooses "
                "a provider with --web-search searxng|serper|brave)",
            )
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        query = SearchQuery(
            query=params.get("q", ""),
            count=int(params.get("count", "5")),
            country=params.get("country"),
            language=params.get("language"),
            freshness=params.get("freshness"),
        )
        backend = self.search
        prepared = backend.provider.prepare(backend.url, query, backend.key)
        response = self._send(
            url, urllib.parse.urlsplit(prepared.url), prepared, operator_configured=True
        )
        sent = HttpSent(
            via=backend.provider.name,
            method=prepared.method,
            url=self._redact(prepared.url),
            headers={
                **{k: self._redact(v) for k, v in prepared.headers.items()},
                **{k: REDACTED for k in prepared.secret_headers},
            },
            body=self._redact((prepared.body or b"").decode("utf-8", "replace")),
        )
        body = response.body
        if backend.key:  # a provider echoing the key back must not put it in the store
            body = body.replace(backend.key.encode(), REDACTED.encode())
        return WebResponse(
            url=url,
            status=response.status,
            headers=response.headers,
            body=body,
            error=response.error,
            peer=response.peer,
            sent=sent,
            blocked=response.blocked,
            limit=response.limit,
        )

    def _redact(self, text: str) -> str:
        key = self.search.key if self.search is not None else None
        if not key:
            return text
        for form in {key, urllib.parse.quote(key, safe=""), urllib.parse.quote_plus(key)}:
            text = text.replace(form, REDACTED)
        return text

    # -- one request ----------------------------------------------------------------------

    def _refuse(self, url: str, reason: str) -> WebResponse:
        return WebResponse(
            url=url, status=0, error=f"blocked by egress policy: {reason}", blocked=reason
        )

    def _over_budget(self, url: str) -> WebResponse | None:
        limits, message, which = self.limits, None, None
        if self.requests >= limits.session_max_requests:
            which = "session_requests"
            message = f"{limits.session_max_requests} requests per session"
        elif self.bytes >= limits.session_max_bytes:
            which, message = "session_bytes", f"{limits.session_max_bytes} bytes per session"
        elif self.seconds >= limits.session_seconds:
            which, message = "session_seconds", f"{limits.session_seconds:g} s per session"
        if which is None:
            return None
        return WebResponse(url=url, status=0, error=f"egress limit reached: {message}", limit=which)

    def _send(
        self,
        url: str,
        parts: urllib.parse.SplitResult,
        prepared: PreparedRequest,
        *,
        operator_configured: bool,
    ) -> WebResponse:
        scheme, name = parts.scheme.lower(), (parts.hostname or "")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            return WebResponse(url=url, status=0, error=f"invalid port in {url!r}")
        with self._lock:  # refused requests count too: an agent looping on them is bounded
            over = self._over_budget(url)
            if over is not None:
                return over
            self.requests += 1
        reason = self.policy.check_name(scheme, name, port)
        if reason is not None:
            return self._refuse(url, reason)
        if not name:
            return WebResponse(url=url, status=0, error=f"no host in {url!r}")
        addresses, failure = self._addresses(name, port)
        if failure is not None:
            return WebResponse(url=url, status=0, error=failure)
        reason = self.policy.check(
            scheme, name, addresses, port, operator_configured=operator_configured
        )
        if reason is not None:
            return self._refuse(url, reason)
        started = self._clock()
        try:
            return self._exchange(
                url, scheme, name, port, [str(a) for a in addresses], parts, prepared
            )
        finally:
            with self._lock:
                self.seconds += self._clock() - started

    def _addresses(self, name: str, port: int) -> tuple[list[IPAddress], str | None]:
        """Resolve once. An address literal (in any notation) is never handed to the resolver."""
        literal = parse_ip_literal(name)
        if literal is not None:
            return [literal], None
        try:
            answers = self._resolve(name, port)
        except OSError as e:
            return [], f"could not resolve host {name!r} ({e})"
        addresses = []
        for answer in answers:
            address = parse_ip_literal(answer)
            if address is None:
                return [], f"the resolver answered {answer!r} for {name!r}, not an address"
            addresses.append(address)
        return addresses, None

    def _exchange(
        self,
        url: str,
        scheme: str,
        name: str,
        port: int,
        addresses: list[str],
        parts: urllib.parse.SplitResult,
        prepared: PreparedRequest,
    ) -> WebResponse:
        limits = self.limits
        with self._lock:
            seconds = min(limits.fetch_seconds, max(0.001, limits.session_seconds - self.seconds))
            budget = min(limits.fetch_max_bytes, max(0, limits.session_max_bytes - self.bytes))
        deadline = self._clock() + seconds
        dialer = _Dialer(name, port, addresses, deadline, self._clock, self._connect)
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = _PinnedHTTPSConnection(
                name, port, opener=dialer.open, timeout=seconds, context=self._tls
            )
        else:
            connection = _PinnedHTTPConnection(name, port, opener=dialer.open, timeout=seconds)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"User-Agent": _USER_AGENT, **prepared.headers, **prepared.secret_headers}
        response: http.client.HTTPResponse | None = None
        try:
            connection.request(prepared.method, target, body=prepared.body, headers=headers)
            response = connection.getresponse()
            body, limit = self._read(connection, response, budget, deadline, seconds)
        except TimeoutError:
            return self._timed_out(url, dialer.peer(), seconds)
        except (OSError, http.client.HTTPException, ssl.SSLError) as e:
            return WebResponse(
                url=url, status=0, error=f"{type(e).__name__}: {e}", peer=dialer.peer()
            )
        finally:
            # A response with `Connection: close` owns the socket; one cut short (a limit) is
            # not closed by reading it to the end.
            if response is not None:
                response.close()
            connection.close()
        if limit == "fetch_seconds":
            return self._timed_out(url, dialer.peer(), seconds)
        kept = {n: v for n in _KEPT_HEADERS if (v := response.getheader(n)) is not None}
        if limit is not None:
            kept["x-ise-es-truncated"] = str(len(body))
        return WebResponse(
            url=url,
            status=response.status,
            headers=kept,
            body=body,
            peer=dialer.peer(),
            limit=limit,
        )

    def _timed_out(self, url: str, peer: str | None, seconds: float) -> WebResponse:
        which = "fetch_seconds" if seconds >= self.limits.fetch_seconds else "session_seconds"
        return WebResponse(
            url=url,
            status=0,
            error=f"egress limit reached: no complete answer within {seconds:g} s",
            peer=peer,
            limit=which,
        )

    def _read(
        self,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        budget: int,
        deadline: float,
        seconds: float,
    ) -> tuple[bytes, str | None]:
        """The body, at most `budget` bytes, before `deadline`; and the limit it hit."""
        chunks: list[bytes] = []
        size = 0
        limit: str | None = None
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                return b"".join(chunks), "fetch_seconds"
            # The socket itself, not connection.sock: after a `Connection: close` answer the
            # response owns the socket and connection.sock is None.
            sock: socket.socket | None = getattr(connection, "pinned", None)
            if sock is not None:
                sock.settimeout(remaining)
            chunk = response.read1(min(_CHUNK, budget - size + 1))  # one recv: the deadline holds
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > budget:
                limit = "fetch_bytes" if budget >= self.limits.fetch_max_bytes else "session_bytes"
                break
        body = b"".join(chunks)[:budget]
        with self._lock:
            self.bytes += len(body)
        return body, limit


class _Dialer:
    """Connects to the first checked address that accepts, in resolver order, before the
    deadline (a host whose IPv6 address is unreachable from here still answers on IPv4), and
    says which one it was."""

    def __init__(
        self,
        name: str,
        port: int,
        addresses: list[str],
        deadline: float,
        clock: Callable[[], float],
        connect: Callable[[tuple[str, int], float], socket.socket],
    ) -> None:
        self._name, self._port, self._addresses = name, port, addresses
        self._deadline, self._clock, self._connect = deadline, clock, connect
        self._tried: list[str] = []

    def open(self) -> socket.socket:
        failure: OSError = TimeoutError(f"no time left to connect to {self._name}")
        for address in self._addresses:
            remaining = self._deadline - self._clock()
            if remaining <= 0:
                break
            self._tried.append(address)
            try:
                return self._connect((address, self._port), remaining)
            except OSError as e:
                failure = e
        raise failure

    def peer(self) -> str | None:
        """The address last connected to (or tried), as host:port; None before any."""
        if not self._tried:
            return None
        address = self._tried[-1]
        return f"[{address}]:{self._port}" if ":" in address else f"{address}:{self._port}"
