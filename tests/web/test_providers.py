"""Search providers against loopback servers speaking each provider's documented JSON: the
request each one sends, the results it maps, the key redacted everywhere it is recorded, and
replay answering from the recording alone."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from ise_es.errors import ConfigError
from ise_es.events import HttpExchange
from ise_es.store.sql import SqlEventStore
from ise_es.tools import RecordedWebGateway
from ise_es.tools.search import PROVIDERS
from ise_es.web import EgressPolicy, LiveWebGateway, SearchBackend, WebSettings
from tests.web.conftest import Internet, LoopbackServer, MakeAgent, Seen

KEY = "sk-test-4f1e9a7c2b"

SEARXNG_ANSWER = {
    "query": "solar storage",
    "number_of_results": 2,
    "results": [
        {
            "url": "https://grid.example.org/battery",
            "title": "Riverside battery doubles storage",
            "content": "The new 120 MWh battery came online in March.",
            "engine": "duckduckgo",
            "engines": ["duckduckgo", "wikipedia"],
            "score": 2.5,
            "category": "general",
        },
        {
            "url": "https://wiki.example.net/Grid_storage",
            "title": "Grid storage",
            "content": "Grid storage keeps energy for later use.",
            "engine": "wikipedia",
            "score": 1.0,
            "category": "general",
        },
    ],
    "answers": [],
    "corrections": [],
    "infoboxes": [],
    "suggestions": ["solar storage cost"],
    "unresponsive_engines": [],
}
SERPER_ANSWER = {
    "searchParameters": {"q": "solar storage", "gl": "us", "hl": "en", "type": "search"},
    "knowledgeGraph": {"title": "Grid energy storage", "type": "Topic"},
    "organic": [
        {
            "title": "Riverside battery doubles storage",
            "link": "https://grid.example.org/battery",
            "snippet": "The new 120 MWh battery came online in March.",
            "position": 1,
        },
        {
            "title": "Grid&#32;storage",
            "link": "https://wiki.example.net/Grid_storage",
            "snippet": "Grid storage keeps energy for later use.",
            "date": "Mar 3, 2026",
            "position": 2,
        },
    ],
    "peopleAlsoAsk": [{"question": "Is grid storage cheap?", "snippet": "It depends."}],
    "relatedSearches": [{"query": "solar storage cost"}],
    "credits": 1,
}
BRAVE_ANSWER = {
    "type": "search",
    "query": {"original": "solar storage", "more_results_available": True},
    "mixed": {"type": "mixed", "main": [{"type": "web", "index": 0, "all": False}]},
    "web": {
        "type": "search",
        "family_friendly": True,
        "results": [
            {
                "type": "search_result",
                "title": "Riverside battery doubles <strong>storage</strong>",
                "url": "https://grid.example.org/battery",
                "description": "The new 120 MWh <strong>battery</strong> came online in March.",
                "language": "en",
                "age": "2 weeks ago",
                "profile": {"name": "grid.example.org"},
            },
            {
                "type": "search_result",
                "title": "Grid storage",
                "url": "https://wiki.example.net/Grid_storage",
                "description": "Grid storage keeps energy for later use.",
            },
        ],
    },
}
EXPECTED = [
    {
        "title": "Riverside battery doubles storage",
        "url": "https://grid.example.org/battery",
        "description": "The new 120 MWh battery came online in March.",
    },
    {
        "title": "Grid storage",
        "url": "https://wiki.example.net/Grid_storage",
        "description": "Grid storage keeps energy for later use.",
    },
]


def serve(server: LoopbackServer, path: str, answer: Any) -> None:
    server.routes[path] = lambda seen: (
        200,
        {"Content-Type": "application/json"},
        json.dumps(answer).encode(),
    )


def gateway(provider: str, url: str, internet: Internet, key: str | None = KEY) -> LiveWebGateway:
    """The default policy (loopback refused): the endpoint is the operator's choice, so it is
    reachable anyway, and only it."""
    return LiveWebGateway(
        EgressPolicy(),
        search=SearchBackend(PROVIDERS[provider], url, key),
        resolver=internet.resolve,
        connector=internet.connect,
    )


def recorded_text(agent_events: list[Any], blobs: SqlEventStore) -> str:
    exchanges = [e for e in agent_events if isinstance(e, HttpExchange)]
    text = b"".join(msgspec.json.encode(e) for e in agent_events).decode()
    for e in exchanges:
        if e.body_digest:
            text += blobs.get_blob(e.body_digest).decode()
    return text


def search_and_check(
    agent_events: list[Any], finished: Any, blobs: SqlEventStore, provider: str
) -> HttpExchange:
    assert not finished.is_error, finished.result_text
    assert finished.details["results"] == EXPECTED
    assert "1. Riverside battery doubles storage\n   https://grid.example.org/battery" in (
        finished.result_text
    )
    (exchange,) = [e for e in agent_events if isinstance(e, HttpExchange)]
    assert exchange.sent is not None and exchange.sent.via == provider
    assert KEY not in recorded_text(agent_events, blobs)
    return exchange


def test_searxng_json_api(
    make_agent: MakeAgent, internet: Internet, server: LoopbackServer, blobs: SqlEventStore
) -> None:
    serve(server, "/search", SEARXNG_ANSWER)
    agent = make_agent(gateway("searxng", f"http://127.0.0.1:{server.port}", internet, None))
    finished = agent.call(
        "web_search", query="solar storage", count=2, language="en", country="us", freshness="week"
    )
    exchange = search_and_check(agent.events, finished, blobs, "searxng")
    (seen,) = server.seen
    assert seen.method == "GET" and seen.path.startswith("/search?")
    assert dict(_query(seen)) == {
        "q": "solar storage",
        "format": "json",
        "pageno": "1",
        "language": "en-US",
        "time_range": "week",
    }
    assert exchange.sent is not None and exchange.sent.url.startswith(
        f"http://127.0.0.1:{server.port}/search?q=solar+storage&format=json"
    )
    assert exchange.peer == f"127.0.0.1:{server.port}"


def test_serper_posts_json_with_the_key_header(
    make_agent: MakeAgent, internet: Internet, server: LoopbackServer, blobs: SqlEventStore
) -> None:
    serve(server, "/search", SERPER_ANSWER)
    agent = make_agent(gateway("serper", f"http://127.0.0.1:{server.port}/search", internet))
    finished = agent.call(
        "web_search", query="solar storage", count=2, country="US", freshness="day"
    )
    exchange = search_and_check(agent.events, finished, blobs, "serper")
    (seen,) = server.seen
    assert seen.method == "POST" and seen.path == "/search"
    assert seen.headers["x-api-key"] == KEY
    assert seen.headers["content-type"] == "application/json"
    assert json.loads(seen.body) == {"q": "solar storage", "gl": "us", "tbs": "qdr:d"}
    assert exchange.sent is not None
    assert exchange.sent.headers["X-API-KEY"] == "[redacted]"
    assert json.loads(exchange.sent.body) == {"q": "solar storage", "gl": "us", "tbs": "qdr:d"}


def test_brave_get_with_the_subscription_token(
    make_agent: MakeAgent, internet: Internet, server: LoopbackServer, blobs: SqlEventStore
) -> None:
    serve(server, "/res/v1/web/search", BRAVE_ANSWER)
    url = f"http://127.0.0.1:{server.port}/res/v1/web/search"
    agent = make_agent(gateway("brave", url, internet))
    finished = agent.call(
        "web_search", query="solar storage", count=2, language="en", freshness="month"
    )
    exchange = search_and_check(agent.events, finished, blobs, "brave")
    (seen,) = server.seen
    assert seen.headers["x-subscription-token"] == KEY
    assert dict(_query(seen)) == {
        "q": "solar storage",
        "count": "2",
        "search_lang": "en",
        "freshness": "pm",
    }
    assert exchange.sent is not None
    assert exchange.sent.headers["X-Subscription-Token"] == "[redacted]"


def test_a_key_echoed_by_the_provider_or_put_in_the_url_is_redacted(
    make_agent: MakeAgent, internet: Internet, server: LoopbackServer, blobs: SqlEventStore
) -> None:
    echo = {**SEARXNG_ANSWER, "query": f"debug key={KEY}"}
    serve(server, "/search", echo)
    url = f"http://127.0.0.1:{server.port}/search?token={KEY}"
    agent = make_agent(gateway("searxng", url, internet))
    finished = agent.call("web_search", query="solar storage", count=2)
    search_and_check(agent.events, finished, blobs, "searxng")
    assert f"token={KEY}" in server.seen[0].path  # sent as configured, recorded redacted


@pytest.mark.parametrize(
    ("provider", "status", "hint"),
    [
        ("searxng", 403, "settings.yml lists json in search.formats"),
        ("serper", 401, "the provider refused the API key"),
        ("brave", 429, "rate limited"),
    ],
)
def test_provider_errors_tell_what_to_do(
    make_agent: MakeAgent,
    internet: Internet,
    server: LoopbackServer,
    provider: str,
    status: int,
    hint: str,
) -> None:
    server.routes["/search"] = (status, {"Content-Type": "application/json"}, b'{"message":"no"}')
    agent = make_agent(gateway(provider, f"http://127.0.0.1:{server.port}/search", internet))
    finished = agent.call("web_search", query="anything")
    assert finished.is_error
    assert finished.result_text.startswith(f"Search failed: HTTP {status} (")
    assert hint in finished.result_text


def test_an_answer_of_another_shape_is_a_tool_error(
    make_agent: MakeAgent, internet: Internet, server: LoopbackServer
) -> None:
    serve(server, "/search", BRAVE_ANSWER)  # Brave's shape where SearXNG's is expected
    agent = make_agent(gateway("searxng", f"http://127.0.0.1:{server.port}/search", internet))
    finished = agent.call("web_search", query="anything")
    assert finished.is_error and "not a searxng answer" in finished.result_text


def test_the_endpoint_is_exempt_only_from_the_address_rules(
    make_agent: MakeAgent, internet: Internet, server: LoopbackServer
) -> None:
    serve(server, "/search", SEARXNG_ANSWER)
    denied = LiveWebGateway(
        EgressPolicy.from_entries(deny=["127.0.0.0/8"]),
        search=SearchBackend(PROVIDERS["searxng"], f"http://127.0.0.1:{server.port}/search"),
        resolver=internet.resolve,
        connector=internet.connect,
    )
    finished = make_agent(denied).call("web_search", query="anything")
    assert "blocked by egress policy: 127.0.0.1 is denied by '127.0.0.0/8'" in finished.result_text
    assert server.seen == []
    # And the agent cannot use the exemption for its own fetches.
    agent = make_agent(gateway("searxng", f"http://127.0.0.1:{server.port}/search", internet))
    fetch = agent.call("web_fetch", url=f"http://127.0.0.1:{server.port}/search?q=x&format=json")
    assert "127.0.0.1 is loopback" in fetch.result_text and server.seen == []


def test_replay_answers_a_live_search_from_the_recording_alone(
    make_agent: MakeAgent, internet: Internet, blobs: SqlEventStore
) -> None:
    recorded: dict[str, Any] = {}
    for provider, path, answer in [
        ("searxng", "/search", SEARXNG_ANSWER),
        ("serper", "/search", SERPER_ANSWER),
        ("brave", "/res/v1/web/search", BRAVE_ANSWER),
    ]:
        server = LoopbackServer()
        serve(server, path, answer)
        agent = make_agent(gateway(provider, f"http://127.0.0.1:{server.port}{path}", internet))
        finished = agent.call("web_search", query="solar storage", count=2)
        server.close()
        exchanges = agent.exchanges()
        replay = make_agent(RecordedWebGateway(exchanges, blobs.get_blob))
        again = replay.call("web_search", query="solar storage", count=2)
        assert again.result_text == finished.result_text and again.details == finished.details
        assert replay.exchanges() == exchanges
        recorded[provider] = finished.details["results"]
    assert recorded["searxng"] == recorded["serper"] == recorded["brave"] == EXPECTED


def test_live_search_without_a_provider_says_how_to_choose_one(
    make_agent: MakeAgent, internet: Internet
) -> None:
    live = LiveWebGateway(EgressPolicy(), resolver=internet.resolve, connector=internet.connect)
    finished = make_agent(live).call("web_search", query="anything")
    assert finished.is_error and "--web-search searxng|serper|brave" in finished.result_text


def test_keys_come_from_the_named_environment_variable() -> None:
    serper = WebSettings(mode="live", search="serper")
    with pytest.raises(ConfigError, match=r"needs an API key in \$SERPER_API_KEY"):
        serper.with_key({})
    assert serper.with_key({"SERPER_API_KEY": KEY}).search_key == KEY
    named = WebSettings(mode="live", search="brave", search_key_env="MY_BRAVE")
    assert named.with_key({"MY_BRAVE": KEY}).search_key == KEY
    assert KEY not in repr(named.with_key({"MY_BRAVE": KEY}))
    assert (
        WebSettings(mode="live", search="searxng", search_url="http://s.test/")
        .with_key({})
        .search_key
        is None
    )
    with pytest.raises(ConfigError, match="needs --web-search-url"):
        WebSettings(mode="live", search="searxng").validated()


def _query(seen: Seen) -> list[tuple[str, str]]:
    import urllib.parse

    return urllib.parse.parse_qsl(urllib.parse.urlsplit(seen.path).query)
