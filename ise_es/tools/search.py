"""Web search providers behind one interface: how a `web_search` call becomes a provider's API
request, and how the provider's JSON answer becomes our result shape
(`{"title", "url", "description"}` per result).

Providers, each from its documented API:

- `searxng`: a self-hosted SearXNG, `GET {url}?q=...&format=json` (the json format must be
  enabled in the instance's settings.yml, `search.formats`, or it answers 403); results in
  `results[]` with `url`, `title`, `content`. No key.
- `serper`: Google results through serper.dev, `POST https://google.serper.dev/search` with a
  JSON body (`q`, `gl`, `hl`, `tbs`) and the key in `X-API-KEY`; results in `organic[]` with
  `title`, `link`, `snippet`.
- `brave`: the Brave Search API, `GET https://api.search.brave.com/res/v1/web/search` with `q`,
  `count`, `country`, `search_lang`, `freshness` and the key in `X-Subscription-Token`; results
  in `web.results[]` with `title`, `url`, `description` (which may hold `<strong>` markup).
- `ise-es`: our own shape, `results[]` with `title`, `url`, `description`: what the fixture
  web's search answers.

Parsing lives here, beside the tools and not in the live gateway, because replay parses the
recorded provider body again: the recorded exchange names the provider (`HttpSent.via`), and
the same function turns the same bytes into the same results with no network.
"""

from __future__ import annotations

import html
import json
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "NATIVE",
    "PROVIDERS",
    "PreparedRequest",
    "SearchProvider",
    "SearchQuery",
    "parse_results",
]

NATIVE = "ise-es"


@dataclass(frozen=True)
class SearchQuery:
    """A `web_search` call's arguments (FORMATS.md section 1)."""

    query: str
    count: int = 5
    country: str | None = None
    language: str | None = None
    freshness: str | None = None
    """day | week | month | year."""


@dataclass(frozen=True)
class PreparedRequest:
    """The provider API call for one query. `secret_headers` hold the key: they are sent but
    recorded as `[redacted]`."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    secret_headers: dict[str, str] = field(default_factory=dict)


Result = dict[str, str]


@dataclass(frozen=True)
class SearchProvider:
    name: str
    default_url: str | None
    key_env: str | None
    """The environment variable read for the key when settings name none (None: no key)."""
    prepare: Callable[[str, SearchQuery, str | None], PreparedRequest]
    parse: Callable[[Any], list[Result]]
    """The decoded JSON answer -> results. Raises KeyError/TypeError/ValueError when the answer
    does not have the documented shape."""
    hints: dict[int, str] = field(default_factory=dict)
    """What to tell the agent (and the operator reading the log) for an HTTP error status."""


_TAG = re.compile(r"<[^>]*>")


def _plain(value: Any) -> str:
    """Provider snippets may carry highlighting markup and entities; the agent gets text."""
    return " ".join(html.unescape(_TAG.sub("", str(value or ""))).split())


def _result(title: Any, url: Any, description: Any) -> Result:
    if not isinstance(url, str) or not url:
        raise ValueError("a result has no url")
    return {"title": _plain(title), "url": url, "description": _plain(description)}


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.urlencode(params)
    if parts.query:
        query = parts.query + "&" + query
    return urllib.parse.urlunsplit(parts._replace(query=query))


# -- SearXNG ---------------------------------------------------------------------------------

_SEARXNG_RANGE = {"day": "day", "week": "week", "month": "month", "year": "year"}


def _searxng_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.path in ("", "/"):
        parts = parts._replace(path="/search")
    return urllib.parse.urlunsplit(parts)


def _searxng_prepare(url: str, q: SearchQuery, key: str | None) -> PreparedRequest:
    params = {"q": q.query, "format": "json", "pageno": "1"}
    if q.language:
        params["language"] = f"{q.language}-{q.country.upper()}" if q.country else q.language
    if q.freshness in _SEARXNG_RANGE:
        params["time_range"] = _SEARXNG_RANGE[q.freshness]
    secret = {"Authorization": f"Bearer {key}"} if key else {}
    return PreparedRequest(
        "GET",
        _with_query(_searxng_url(url), params),
        {"Accept": "application/json"},
        secret_headers=secret,
    )


def _searxng_parse(payload: Any) -> list[Result]:
    return [_result(r.get("title"), r.get("url"), r.get("content")) for r in payload["results"]]


# -- Serper ----------------------------------------------------------------------------------

_SERPER_TBS = {"day": "qdr:d", "week": "qdr:w", "month": "qdr:m", "year": "qdr:y"}


def _serper_prepare(url: str, q: SearchQuery, key: str | None) -> PreparedRequest:
    body: dict[str, str] = {"q": q.query}
    if q.country:
        body["gl"] = q.country.lower()
    if q.language:
        body["hl"] = q.language.lower()
    if q.freshness in _SERPER_TBS:
        body["tbs"] = _SERPER_TBS[q.freshness]
    return PreparedRequest(
        "POST",
        url,
        {"Content-Type": "application/json", "Accept": "application/json"},
        json.dumps(body, ensure_ascii=False).encode(),
        secret_headers={"X-API-KEY": key or ""},
    )


def _serper_parse(payload: Any) -> list[Result]:
    organic = payload.get("organic", [])
    if not isinstance(organic, list):
        raise TypeError("organic is not a list")
    return [_result(r.get("title"), r.get("link"), r.get("snippet")) for r in organic]


# -- Brave -----------------------------------------------------------------------------------

_BRAVE_FRESHNESS = {"day": "pd", "week": "pw", "month": "pm", "year": "py"}


def _brave_prepare(url: str, q: SearchQuery, key: str | None) -> PreparedRequest:
    params = {"q": q.query, "count": str(q.count)}
    if q.country:
        params["country"] = q.country.upper()
    if q.language:
        params["search_lang"] = q.language.lower()
    if q.freshness in _BRAVE_FRESHNESS:
        params["freshness"] = _BRAVE_FRESHNESS[q.freshness]
    return PreparedRequest(
        "GET",
        _with_query(url, params),
        {"Accept": "application/json"},
        secret_headers={"X-Subscription-Token": key or ""},
    )


def _brave_parse(payload: Any) -> list[Result]:
    web = payload.get("web") or {}  # absent when the query found no web results
    return [_result(r.get("title"), r.get("url"), r.get("description")) for r in web["results"]]


# -- ours ------------------------------------------------------------------------------------


def _native_prepare(url: str, q: SearchQuery, key: str | None) -> PreparedRequest:
    params = {"q": q.query, "count": str(q.count)}
    for name in ("country", "language", "freshness"):
        if getattr(q, name):
            params[name] = getattr(q, name)
    return PreparedRequest("GET", _with_query(url, params))


def _native_parse(payload: Any) -> list[Result]:
    # Our own shape is already text: taken as it is.
    return [
        {
            "title": str(r["title"]),
            "url": str(r["url"]),
            "description": str(r.get("description", "")),
        }
        for r in payload["results"]
    ]


_KEY_HINT = "the provider refused the API key; check the variable named by --web-search-key-env"
PROVIDERS: dict[str, SearchProvider] = {
    "searxng": SearchProvider(
        "searxng",
        None,
        None,
        _searxng_prepare,
        _searxng_parse,
        {403: "SearXNG refuses format=json unless settings.yml lists json in search.formats"},
    ),
    "serper": SearchProvider(
        "serper",
        "https://google.serper.dev/search",
        "SERPER_API_KEY",
        _serper_prepare,
        _serper_parse,
        {401: _KEY_HINT, 403: _KEY_HINT, 429: "rate limited or out of credits"},
    ),
    "brave": SearchProvider(
        "brave",
        "https://api.search.brave.com/res/v1/web/search",
        "BRAVE_SEARCH_API_KEY",
        _brave_prepare,
        _brave_parse,
        {401: _KEY_HINT, 403: _KEY_HINT, 422: "the query was rejected", 429: "rate limited"},
    ),
    NATIVE: SearchProvider(NATIVE, None, None, _native_prepare, _native_parse),
}


def parse_results(provider: str, body: bytes, count: int) -> list[Result]:
    """The first `count` results of a provider's answer.

    Raises:
        ValueError: unknown provider, or the body is not the provider's documented shape.
    """
    spec = PROVIDERS.get(provider)
    if spec is None:
        raise ValueError(f"unknown search provider {provider!r}")
    try:
        return spec.parse(json.loads(body))[:count]
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"not a {provider} answer ({type(e).__name__}: {e})") from e
