"""Host-side web gateways: how `web_fetch` and `web_search` reach "the web" without the sandbox
ever touching a network.

A gateway answers one HTTP request at a time (no redirect following: the tool follows
redirects hop by hop, so each hop is recorded as its own HttpExchange and replays the same).
Three gateways:

- `FixtureWebGateway`: a local fixture site (`ise_es/data/web/`) served by a small HTTP server on
  127.0.0.1 that the gateway starts. We serve it over real HTTP rather than reading files
  directly so that fixture runs go through the same client code as live ones (status codes,
  headers, redirects, byte limits); the logical URLs (`https://docs.example.com/...`) are
  mapped to the server, and recorded under their logical form so recordings hold no port.
  `web_search` is answered by a keyword index built from the fixture pages.
- `RecordedWebGateway`: answers from HttpExchange events and their body blobs (replay).
- `LiveWebGateway` (`ise_es.web.live`): the real web through an egress policy, and web search
  through a provider (SearXNG, Serper, Brave).

Searches are requests too: `GET {SEARCH_ENDPOINT}?q=...&count=...`, so they are recorded and
replayed like fetches. The fixture web answers in our own shape (`{"results": [{"title", "url",
"description"}]}`); the live gateway answers with the provider's own JSON and says which
provider in `WebResponse.sent`, and `web_search` maps it (`ise_es.tools.search`).
"""

from __future__ import annotations

import http.client
import json
import math
import mimetypes
import re
import threading
import urllib.parse
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol

import msgspec

from ise_es.events import HttpExchange, HttpSent
from ise_es.tools.webtext import extract

__all__ = [
    "SEARCH_ENDPOINT",
    "FixtureWebGateway",
    "RecordedWebGateway",
    "WebGateway",
    "WebResponse",
    "default_fixture_root",
]

SEARCH_ENDPOINT = "https://search.ise-es.test/search"
"""The logical address of web search; `.test` is reserved, so it can never be a real host."""

_KEPT_HEADERS = ("content-type", "content-length", "location", "last-modified", "etag")
_TIMEOUT_S = 20.0


class WebResponse(msgspec.Struct, frozen=True, kw_only=True):
    """One HTTP hop. `status` 0 with `error` set: no response at all (refused, blocked...).

    The last four fields are recorded in the HttpExchange as they are (see its docstring)."""

    url: str
    status: int
    headers: dict[str, str] = {}
    body: bytes = b""
    error: str | None = None
    peer: str | None = None
    sent: HttpSent | None = None
    blocked: str | None = None
    limit: str | None = None


class WebGateway(Protocol):
    name: str

    def request(self, method: str, url: str, *, call_id: str) -> WebResponse:
        """Perform one request for the tool call `call_id`; never raises for network errors."""
        ...

    def close(self) -> None: ...


def default_fixture_root() -> Path:
    return Path(__file__).resolve().parents[1] / "data" / "web"


def _http_get(url: str, *, logical_url: str, max_bytes: int) -> WebResponse:
    """GET `url` with the standard library client: no proxies, no redirects, bounded body."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=_TIMEOUT_S
        )
    else:
        connection = http.client.HTTPConnection(
            parts.hostname or "", parts.port, timeout=_TIMEOUT_S
        )
    try:
        connection.request("GET", target, headers={"User-Agent": "ise-es-web-gateway/1"})
        response = connection.getresponse()
        body = response.read(max_bytes + 1)
        headers = {
            name: value for name in _KEPT_HEADERS if (value := response.getheader(name)) is not None
        }
        if len(body) > max_bytes:
            body = body[:max_bytes]
            headers["x-ise-es-truncated"] = str(max_bytes)
        return WebResponse(url=logical_url, status=response.status, headers=headers, body=body)
    except (OSError, http.client.HTTPException) as e:
        return WebResponse(url=logical_url, status=0, error=f"{type(e).__name__}: {e}")
    finally:
        connection.close()


# ---------------------------------------------------------------------------------------------
# Recorded (replay)
# ---------------------------------------------------------------------------------------------


class RecordedWebGateway:
    """Answers from recorded exchanges, in recorded order per (call, method, URL); a request the
    recording never made gets an error response, never the network."""

    name = "recorded"

    def __init__(self, exchanges: Iterable[HttpExchange], get_blob: Callable[[str], bytes]) -> None:
        self._by_call: dict[tuple[str, str, str], deque[HttpExchange]] = defaultdict(deque)
        for exchange in exchanges:
            self._by_call[(exchange.call_id, exchange.method, exchange.url)].append(exchange)
        self._get_blob = get_blob

    def request(self, method: str, url: str, *, call_id: str) -> WebResponse:
        queue = self._by_call.get((call_id, method, url))
        if not queue:
            return WebResponse(
                url=url,
                status=0,
                error=f"no recorded response for {method} {url} in call {call_id} (replay "
                "never goes to the network)",
            )
        exchange = queue.popleft()
        body = self._get_blob(exchange.body_digest) if exchange.body_digest else b""
        return WebResponse(
            url=url,
            status=exchange.status,
            headers=dict(exchange.headers),
            body=body,
            error=exchange.error,
            peer=exchange.peer,
            sent=exchange.sent,
            blocked=exchange.blocked,
            limit=exchange.limit,
        )

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------
# Fixture site
# ---------------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class _Page(msgspec.Struct, frozen=True):
    url: str
    title: str
    description: str
    terms: dict[str, int]
    title_terms: frozenset[str]


class FixtureSite:
    """The fixture site's files (`sites/<host>/...`), redirects and search index."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sites = root / "sites"
        if not self.sites.is_dir():
            raise FileNotFoundError(f"fixture web site not found: {self.sites}")
        self.hosts = sorted(p.name for p in self.sites.iterdir() if p.is_dir())
        self.redirects = self._load_redirects()
        self.pages = self._index()

    def _load_redirects(self) -> dict[tuple[str, str], tuple[int, str]]:
        redirects: dict[tuple[str, str], tuple[int, str]] = {}
        for host in self.hosts:
            path = self.sites / host / "_redirects"
            if not path.exists():
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                fields = line.split()
                if not fields or fields[0].startswith("#"):
                    continue
                if len(fields) not in (2, 3):
                    raise ValueError(f"{path}:{number}: expected 'FROM TO [STATUS]'")
                status = int(fields[2]) if len(fields) == 3 else 301
                redirects[(host, fields[0])] = (status, fields[1])
        return redirects

    def _index(self) -> list[_Page]:
        pages = []
        for path in sorted(self.sites.rglob("*")):
            if not path.is_file() or path.suffix not in {".html", ".txt", ".md"}:
                continue
            relative = path.relative_to(self.sites)
            host, rest = relative.parts[0], "/".join(relative.parts[1:])
            if rest.endswith("index.html"):
                rest = rest[: -len("index.html")]
            kind = "text/html" if path.suffix == ".html" else "text/plain"
            title, text = extract(path.read_text(), kind, "text")
            title = title or (text.splitlines()[0].lstrip("# ") if text else rest)
            match = re.search(r'<meta name="description" content="([^"]*)"', path.read_text())
            description = match.group(1) if match else " ".join(text.split())[:200]
            counts: dict[str, int] = defaultdict(int)
            for token in tokens(text):
                counts[token] += 1
            pages.append(
                _Page(
                    url=f"https://{host}/{rest}",
                    title=title,
                    description=description,
                    terms=dict(counts),
                    title_terms=frozenset(tokens(title)),
                )
            )
        return pages

    def search(self, query: str, count: int) -> list[dict[str, str]]:
        """Rank pages by idf-weighted keyword matches (title matches count triple)."""
        terms = [t for t in dict.fromkeys(tokens(query)) if t not in _STOPWORDS]
        n = len(self.pages)
        scored = []
        for page in self.pages:
            score = 0.0
            for term in terms:
                df = sum(1 for p in self.pages if term in p.terms)
                if not df:
                    continue
                idf = math.log(1 + n / df)
                tf = page.terms.get(term, 0)
                score += idf * (math.log(1 + tf) + (3.0 if term in page.title_terms else 0.0))
            if score > 0:
                scored.append((-score, page.url, page))
        scored.sort()
        return [
            {"title": p.title, "url": p.url, "description": p.description}
            for _, _, p in scored[:count]
        ]

    def file_for(self, host: str, path: str) -> Path | None:
        base = (self.sites / host).resolve()
        candidate = (base / urllib.parse.unquote(path).lstrip("/")).resolve()
        if candidate != base and base not in candidate.parents:
            return None
        if candidate.is_dir():
            candidate = candidate / "index.html"
        return candidate if candidate.is_file() else None


def _words(text: str) -> list[str]:
    return text.split()


_STOPWORDS = frozenset(
    _words(
        "a an and are as at be by for from how i in is it of on or the to what when where "
        "which who why with"
    )
)


def _handler(site: FixtureSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass  # requests are recorded as events; stderr noise helps nobody

        def _send(self, status: int, body: bytes, content_type: str, **extra: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in extra.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            if parts.path == "/_search":
                query = urllib.parse.parse_qs(parts.query)
                text = query.get("q", [""])[0]
                count = int(query.get("count", ["5"])[0])
                payload = {"query": text, "results": site.search(text, count)}
                body = json.dumps(payload, ensure_ascii=False).encode()
                self._send(200, body, "application/json")
                return
            host, _, rest = parts.path.lstrip("/").partition("/")
            redirect = site.redirects.get((host, "/" + rest))
            if redirect is not None:
                self._send(redirect[0], b"", "text/plain", Location=redirect[1])
                return
            path = site.file_for(host, rest)
            if path is None:
                body = (
                    b"<html><head><title>404 Not Found</title></head><body>Not Found</body></html>"
                )
                self._send(404, body, "text/html; charset=utf-8")
                return
            kind = {".md": "text/markdown"}.get(path.suffix) or (
                mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            )
            if kind.startswith("text/") or kind == "application/json":
                kind += "; charset=utf-8"
            self._send(200, path.read_bytes(), kind)

    return Handler


class FixtureWebGateway:
    """The fixture site over HTTP on 127.0.0.1 (a server thread this gateway owns)."""

    name = "fixture"

    def __init__(self, root: Path | None = None, *, max_bytes: int = 4 << 20) -> None:
        self.site = FixtureSite(root or default_fixture_root())
        self._max_bytes = max_bytes
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.site))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fixture-web", daemon=True
        )
        self._thread.start()

    def request(self, method: str, url: str, *, call_id: str) -> WebResponse:
        if method != "GET":
            return WebResponse(url=url, status=0, error=f"method {method} is not supported")
        local = f"http://127.0.0.1:{self.port}"
        if url.startswith(SEARCH_ENDPOINT):
            target = local + "/_search" + url[len(SEARCH_ENDPOINT) :]
        else:
            parts = urllib.parse.urlsplit(url)
            host = (parts.hostname or "").lower()
            if host not in self.site.hosts:
                return WebResponse(
                    url=url,
                    status=0,
                    error=f"could not resolve host {host or url!r} (the offline fixture web has "
                    f"only: {', '.join(self.site.hosts)})",
                )
            path = urllib.parse.quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
            target = f"{local}/{host}{path}"
            if parts.query:
                target += "?" + parts.query
        return _http_get(target, logical_url=url, max_bytes=self._max_bytes)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> FixtureWebGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
