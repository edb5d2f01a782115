"""The live gateway through the real tool runner: refusals before any socket, the connection to
the checked address, redirects re-checked, rebinding, TLS for the name, limits, the store."""

from __future__ import annotations

import socket
import time

import pytest

from ise_es.web import EgressPolicy, LiveWebGateway, WebLimits, WebSettings
from tests.web.conftest import (
    PUBLIC,
    PUBLIC_2,
    Authority,
    Internet,
    LoopbackServer,
    MakeAgent,
    MakeLive,
)

PAGE = "<html><head><title>Hello</title></head><body><p>Public page.</p></body></html>"


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("10.0.0.5", "10.0.0.5, which is private"),
        ("192.168.0.10", "192.168.0.10, which is private"),
        ("169.254.169.254", "169.254.169.254, which is link-local (the cloud metadata service)"),
        ("100.64.1.2", "100.64.1.2, which is shared address space (CGNAT, 100.64.0.0/10)"),
        ("127.0.0.1", "127.0.0.1, which is loopback"),
        ("::1", "::1, which is loopback"),
        ("fd00::5", "fd00::5, which is unique local (IPv6 ULA, fc00::/7)"),
        ("fe80::1", "fe80::1, which is link-local"),
        (
            "::ffff:10.0.0.5",
            "::ffff:10.0.0.5, which is an IPv4-mapped form of 10.0.0.5, which is private",
        ),
        ("::ffff:169.254.169.254", "::ffff:169.254.169.254, which is an IPv4-mapped form of"),
        ("64:ff9b::a9fe:a9fe", "64:ff9b::a9fe:a9fe, which is a NAT64 form of 169.254.169.254"),
        ("224.0.0.1", "224.0.0.1, which is multicast"),
        ("0.0.0.0", "0.0.0.0, which is unspecified"),
    ],
)
def test_names_resolving_to_special_addresses_are_refused_before_any_socket(
    make_agent: MakeAgent, make_live: MakeLive, internet: Internet, answer: str, reason: str
) -> None:
    internet.name("target.test", [answer])
    agent = make_agent(make_live())
    finished = agent.call("web_fetch", url="http://target.test/secret")
    assert finished.is_error
    assert finished.result_text.startswith(
        "Fetch failed for http://target.test/secret: blocked by egress policy: "
        f"target.test resolves to {reason}"
    )
    assert internet.connects == []
    (exchange,) = agent.exchanges(finished)
    assert exchange.status == 0 and exchange.body_digest is None
    assert exchange.blocked is not None and exchange.blocked.startswith("target.test resolves to")
    assert exchange.error == f"blocked by egress policy: {exchange.blocked}"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://10.0.0.5/", "10.0.0.5 is private"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254 is link-local (the cloud metadata service)",
        ),
        ("http://2130706433/", "127.0.0.1 is loopback"),
        ("http://0x7f.1/", "127.0.0.1 is loopback"),
        (
            "http://[::ffff:a9fe:a9fe]/",
            "::ffff:169.254.169.254 is an IPv4-mapped form of 169.254.169.254",
        ),
        ("http://[fe80::1%25eth0]/", "fe80::1 is link-local"),
        ("http://100.100.100.200/", "100.100.100.200 is shared address space (CGNAT"),
    ],
)
def test_address_literals_are_refused_without_a_lookup(
    make_agent: MakeAgent, make_live: MakeLive, internet: Internet, url: str, message: str
) -> None:
    agent = make_agent(make_live())
    finished = agent.call("web_fetch", url=url)
    assert finished.is_error
    assert f"blocked by egress policy: {message}" in finished.result_text
    assert internet.lookups == [] and internet.connects == []


def test_public_names_are_fetched_from_the_checked_address_with_the_name_as_host(
    make_agent: MakeAgent, make_live: MakeLive, internet: Internet, server: LoopbackServer
) -> None:
    server.page("/hello", PAGE)
    internet.name("www.example.test", [PUBLIC])
    internet.route(PUBLIC, 80, server)
    agent = make_agent(make_live())
    finished = agent.call("web_fetch", url="http://www.example.test/hello")
    assert not finished.is_error, finished.result_text
    assert "Title: Hello" in finished.result_text and "Public page." in finished.result_text
    assert internet.lookups == ["www.example.test"]
    assert internet.connects == [(PUBLIC, 80)]
    assert server.seen[0].headers["host"] == "www.example.test"
    (exchange,) = agent.exchanges(finished)
    assert exchange.peer == f"{PUBLIC}:80" and exchange.status == 200
    assert exchange.blocked is None and exchange.limit is None


def test_an_unreachable_first_address_falls_back_to_the_next_checked_one(
    make_agent: MakeAgent, make_live: MakeLive, internet: Internet, server: LoopbackServer
) -> None:
    with socket.socket() as closed:  # a loopback port nothing listens on
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]
    server.page("/", PAGE)
    internet.name("dual.test", [PUBLIC_2, PUBLIC])
    internet.routes[(PUBLIC_2, 80)] = dead
    internet.route(PUBLIC, 80, server)
    agent = make_agent(make_live())
    finished = agent.call("web_fetch", url="http://dual.test/")
    assert not finished.is_error, finished.result_text
    assert internet.connects == [(PUBLIC_2, 80), (PUBLIC, 80)]
    assert agent.exchanges(finished)[0].peer == f"{PUBLIC}:80"


def test_ipv6_public_address_and_bracketed_peer(
    make_agent: MakeAgent, make_live: MakeLive, internet: Internet, server: LoopbackServer
) -> None:
    server.page("/", PAGE)
    internet.route(PUBLIC_2, 80, server)
    agent = make_agent(make_live())
    finished = agent.call("web_fetch", url=f"http://[{PUBLIC_2}]/")
    assert not finished.is_error, finished.result_text
    assert agent.exchanges(finished)[0].peer == f"[{PUBLIC_2}]:80"
    assert server.seen[0].headers["host"] == f"[{PUBLIC_2}]"


def test_a_redirect_to_a_private_address_is_refused_at_that_hop(
    make_agent: MakeAgent, make_live: MakeLive, internet: Internet, server: LoopbackServer
) -> None:
    server.redirect("/go", "http://10.0.0.5/admin")
    server.redirect("/meta", "http://metadata.test/latest/meta-data/")
    server.redirect("/file", "file:///etc/passwd")
    internet.name("www.example.test", [PUBLIC])
    internet.name("metadata.test", ["169.254.169.254"])
    internet.route(PUBLIC, 80, server)
    agent = make_agent(make_live())
    for path, message in [
        ("/go", "blocked by egress policy: 10.0.0.5 is private"),
        ("/meta", "metadata.test resolves to 169.254.169.254, which is link-local"),
        ("/file", "blocked by egress policy: scheme 'file' is not allowed"),
    ]:
        finished = agent.call("web_fetch", url=f"http://www.example.test{path}")
        assert finished.is_error and message in finished.result_text
        first, second = agent.exchanges(finished)
        assert first.status == 302 and first.peer == f"{PUBLIC}:80"
        assert second.blocked is not None and second.status == 0
    assert {address for address, _ in internet.connects} == {PUBLIC}


def test_rebinding_cannot_reach_the_private_answer(
    make_agent: MakeAgent, make_live: MakeLive, internet: Internet, server: LoopbackServer
) -> None:
    """First answer public, then private: the fetch connects to the address it checked (the
    guard fails the test on any other), and the next fetch, which resolves again, is refused."""
    server.page("/", PAGE)
    internet.name("rebind.test", [PUBLIC], ["10.0.0.5"])
    internet.route(PUBLIC, 80, server)
    agent = make_agent(make_live())
    first = agent.call("web_fetch", url="http://rebind.test/")
    assert not first.is_error and internet.lookups == ["rebind.test"]
    second = agent.call("web_fetch", url="http://rebind.test/")
    assert second.is_error
    assert "rebind.test resolves to 10.0.0.5, which is private" in second.result_text
    assert internet.lookups == ["rebind.test", "rebind.test"]
    assert internet.connects == [(PUBLIC, 80)]


def test_loopback_is_reachable_only_when_allowed_explicitly(
    make_agent: MakeAgent, make_live: MakeLive, internet: Internet, server: LoopbackServer
) -> None:
    server.page("/", PAGE)
    url = f"http://127.0.0.1:{server.port}/"
    internet.name("localhost", ["127.0.0.1", "::1"])
    default = make_agent(make_live())
    refused = default.call("web_fetch", url=url)
    assert "blocked by egress policy: 127.0.0.1 is loopback" in refused.result_text
    by_name = default.call("web_fetch", url=f"http://localhost:{server.port}/")
    assert "localhost resolves to 127.0.0.1, which is loopback" in by_name.result_text
    no_port = make_agent(make_live(allow=("127.0.0.1",))).call("web_fetch", url=url)
    assert f"port {server.port} is not allowed (allowed: 80, 443" in no_port.result_text
    assert internet.connects == [] and server.seen == []
    allowed = make_agent(make_live(allow=(f"127.0.0.1:{server.port}",)))
    ok = allowed.call("web_fetch", url=url)
    assert not ok.is_error and "Public page." in ok.result_text
    assert internet.connects == [("127.0.0.1", server.port)]


def test_ports_are_limited_to_80_and_443_unless_allowed(
    make_agent: MakeAgent, make_live: MakeLive, internet: Internet, server: LoopbackServer
) -> None:
    server.page("/", PAGE)
    internet.name("www.example.test", [PUBLIC])
    internet.route(PUBLIC, 8080, server)
    refused = make_agent(make_live()).call("web_fetch", url="http://www.example.test:8080/")
    assert "port 8080 is not allowed" in refused.result_text and internet.connects == []
    ok = make_agent(make_live(ports=(80, 443, 8080))).call(
        "web_fetch", url="http://www.example.test:8080/"
    )
    assert not ok.is_error and internet.connects == [(PUBLIC, 8080)]


def test_deny_entries_refuse_before_the_name_is_looked_up(
    make_agent: MakeAgent, make_live: MakeLive, internet: Internet
) -> None:
    agent = make_agent(make_live(deny=("*.tracker.test",)))
    finished = agent.call("web_fetch", url="https://ads.tracker.test/pixel")
    assert "ads.tracker.test is denied by '*.tracker.test'" in finished.result_text
    assert internet.lookups == [] and internet.connects == []


def test_https_sends_sni_and_verifies_the_certificate_for_the_name(
    make_agent: MakeAgent, make_live: MakeLive, internet: Internet, test_ca: Authority
) -> None:
    tls = LoopbackServer(test_ca.server_context())
    try:
        tls.page("/", PAGE)
        internet.name("secure.test", [PUBLIC])
        internet.name("impostor.test", [PUBLIC])
        internet.route(PUBLIC, 443, tls)
        agent = make_agent(make_live(ssl_context=test_ca.client_context()))
        ok = agent.call("web_fetch", url="https://secure.test/")
        assert not ok.is_error, ok.result_text
        assert tls.sni == ["secure.test"] and tls.seen[0].headers["host"] == "secure.test"
        wrong = agent.call("web_fetch", url="https://impostor.test/")
        assert wrong.is_error and "SSLCertVerificationError" in wrong.result_text
        assert "impostor.test" in wrong.result_text
        assert len(tls.seen) == 1  # the impostor's request was never sent
    finally:
        tls.close()


def test_fetch_bytes_limit_truncates_and_is_recorded(
    make_agent: MakeAgent, make_live: MakeLive, internet: Internet, server: LoopbackServer
) -> None:
    server.routes["/big"] = (200, {"Content-Type": "text/plain"}, b"x" * 5000)
    internet.name("www.example.test", [PUBLIC])
    internet.route(PUBLIC, 80, server)
    agent = make_agent(make_live(limits=WebLimits(fetch_max_bytes=1000)))
    finished = agent.call("web_fetch", url="http://www.example.test/big")
    assert not finished.is_error
    (exchange,) = agent.exchanges(finished)
    assert exchange.limit == "fetch_bytes" and exchange.body_size == 1000
    assert exchange.headers["x-ise-es-truncated"] == "1000"


def test_session_limits_requests_and_bytes(
    make_agent: MakeAgent, make_live: MakeLive, internet: Internet, server: LoopbackServer
) -> None:
    server.routes["/a"] = (200, {"Content-Type": "text/plain"}, b"a" * 600)
    internet.name("www.example.test", [PUBLIC])
    internet.route(PUBLIC, 80, server)
    agent = make_agent(make_live(limits=WebLimits(session_max_requests=2)))
    for _ in range(2):
        assert not agent.call("web_fetch", url="http://www.example.test/a").is_error
    third = agent.call("web_fetch", url="http://www.example.test/a")
    assert "egress limit reached: 2 requests per session" in third.result_text
    assert agent.exchanges(third)[0].limit == "session_requests" and len(server.seen) == 2

    by_bytes = make_agent(make_live(limits=WebLimits(session_max_bytes=1000)))
    first = by_bytes.call("web_fetch", url="http://www.example.test/a")
    assert by_bytes.exchanges(first)[0].limit is None
    second = by_bytes.call("web_fetch", url="http://www.example.test/a")
    assert by_bytes.exchanges(second)[0].limit == "session_bytes"
    assert by_bytes.exchanges(second)[0].body_size == 400
    third = by_bytes.call("web_fetch", url="http://www.example.test/a")
    assert "egress limit reached: 1000 bytes per session" in third.result_text


def test_a_slow_answer_hits_the_fetch_time_limit(
    make_agent: MakeAgent, make_live: MakeLive, internet: Internet
) -> None:
    """A server that sends headers, then trickles its body: the limit is on the whole fetch,
    not on each read."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n"
                b"Connection: close\r\n\r\n"
            )
            for _ in range(20):
                try:
                    conn.sendall(b"x")
                except OSError:
                    return
                time.sleep(0.1)

    import threading

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    internet.name("slow.test", [PUBLIC])
    internet.routes[(PUBLIC, 80)] = port
    agent = make_agent(make_live(limits=WebLimits(fetch_seconds=0.5)))
    started = time.monotonic()
    finished = agent.call("web_fetch", url="http://slow.test/")
    assert time.monotonic() - started < 1.5
    assert "egress limit reached: no complete answer within 0.5 s" in finished.result_text
    assert agent.exchanges(finished)[0].limit == "fetch_seconds"
    listener.close()
    thread.join(3)


def test_unresolvable_and_refused_connections_are_tool_errors(
    make_agent: MakeAgent, make_live: MakeLive, internet: Internet
) -> None:
    agent = make_agent(make_live(allow=("127.0.0.1:1",)))
    missing = agent.call("web_fetch", url="http://nowhere.test/")
    assert missing.is_error and "could not resolve host 'nowhere.test'" in missing.result_text
    refused = agent.call("web_fetch", url="http://127.0.0.1:1/")
    assert refused.is_error and "ConnectionRefusedError" in refused.result_text


def test_the_store_of_a_postgresql_url_is_never_reached(
    make_agent: MakeAgent, internet: Internet, pg_url: str
) -> None:
    """With loopback and the PostgreSQL port allowed, the store itself stays out of reach: its
    address comes from the real --db URL, resolved by the system resolver."""
    from ise_es.web import store_endpoint

    endpoint = store_endpoint(pg_url)
    assert endpoint is not None
    host, port = endpoint
    settings = WebSettings(
        mode="live", allow=(f"127.0.0.0/8:{port}", f"[::1]:{port}"), store_url=pg_url
    )
    gateway = settings.open_gateway(connector=internet.connect)
    assert isinstance(gateway, LiveWebGateway)
    agent = make_agent(gateway)
    for url in (
        f"http://{host}:{port}/",
        f"http://127.0.0.1:{port}/",
        f"http://[::ffff:127.0.0.1]:{port}/",
    ):
        finished = agent.call("web_fetch", url=url)
        assert finished.is_error and "the event store's own database" in finished.result_text, url
    assert internet.connects == []


def test_policy_refusal_never_raises_for_odd_urls(make_live: MakeLive) -> None:
    gateway = make_live()
    for url in ("http://:80/", "http://example.test:99999/", "gopher://example.test/"):
        response = gateway.request("GET", url, call_id="c")
        assert response.status == 0 and response.error


def test_policy_object_is_shared_by_settings_and_gateway() -> None:
    settings = WebSettings(
        mode="live", allow=("10.1.0.0/16",), deny=("10.1.2.0/24",), ports=(80, 8080)
    )
    policy = settings.policy(resolver=lambda host, port: [])
    assert isinstance(policy, EgressPolicy)
    assert policy.describe() == {
        "allow": ["10.1.0.0/16"],
        "deny": ["10.1.2.0/24"],
        "ports": [80, 8080],
    }
