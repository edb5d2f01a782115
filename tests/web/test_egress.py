"""The egress policy on its own: which addresses are special, how entries parse, rule order."""

from __future__ import annotations

import ipaddress

import pytest

from ise_es.errors import ConfigError
from ise_es.web import EgressPolicy, EgressRule, WebSettings, special_purpose, store_endpoint
from ise_es.web.egress import parse_ip_literal


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.0.0.5", "private"),
        ("172.16.3.4", "private"),
        ("192.168.1.1", "private"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("169.254.169.254", "link-local (the cloud metadata service)"),
        ("169.254.10.1", "link-local"),
        ("100.64.0.1", "shared address space (CGNAT, 100.64.0.0/10)"),
        ("224.0.0.251", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "broadcast"),
        ("0.0.0.0", "unspecified ('this network')"),
        ("192.0.2.10", "reserved (documentation)"),
        ("198.18.0.1", "reserved (benchmarking)"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fc00::1", "unique local (IPv6 ULA, fc00::/7)"),
        ("fd12:3456::1", "unique local (IPv6 ULA, fc00::/7)"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "reserved (documentation)"),
        ("2001::1", "reserved (Teredo tunnel)"),
        ("::ffff:10.0.0.5", "an IPv4-mapped form of 10.0.0.5, which is private"),
        (
            "::ffff:169.254.169.254",
            "an IPv4-mapped form of 169.254.169.254, which is link-local (the cloud metadata "
            "service)",
        ),
        ("::ffff:127.0.0.1", "an IPv4-mapped form of 127.0.0.1, which is loopback"),
        ("::10.0.0.5", "an IPv4-compatible form of 10.0.0.5, which is private"),
        ("64:ff9b::a00:5", "a NAT64 form of 10.0.0.5, which is private"),
        (
            "2002:a9fe:a9fe::1",
            "a 6to4 form of 169.254.169.254, which is link-local (the cloud metadata service)",
        ),
        ("4000::1", "reserved (outside IPv6 global unicast 2000::/3)"),
    ],
)
def test_special_purpose_addresses_are_named(address: str, reason: str) -> None:
    assert special_purpose(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::"]
)
def test_public_addresses_and_their_mapped_forms_pass(address: str) -> None:
    assert special_purpose(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("spelled", "address"),
    [
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("[::ffff:a9fe:a9fe]", "::ffff:169.254.169.254"),
        ("fe80::1%eth0", "fe80::1"),
        ("10.0.0.5", "10.0.0.5"),
    ],
)
def test_address_literals_in_any_notation(spelled: str, address: str) -> None:
    assert parse_ip_literal(spelled) == ipaddress.ip_address(address)


@pytest.mark.parametrize("name", ["docs.example.com", "cafe.de", "0x7g.1", "1.2.3.4.5"])
def test_names_are_not_address_literals(name: str) -> None:
    assert parse_ip_literal(name) is None


@pytest.mark.parametrize(
    ("text", "network", "host", "port"),
    [
        ("10.1.0.0/16", "10.1.0.0/16", None, None),
        ("127.0.0.1:8080", "127.0.0.1/32", None, 8080),
        ("::1", "::1/128", None, None),
        ("[::1]:8443", "::1/128", None, 8443),
        ("fd00::/8", "fd00::/8", None, None),
        ("Docs.Example.com.", None, "docs.example.com", None),
        ("*.corp.example:8443", None, "*.corp.example", 8443),
    ],
)
def test_entries_parse(text: str, network: str | None, host: str | None, port: int | None) -> None:
    rule = EgressRule.parse(text)
    assert (str(rule.network) if rule.network else None, rule.host, rule.port) == (
        network,
        host,
        port,
    )


@pytest.mark.parametrize("text", ["", "host:99999", "host:http", "exa mple.com", "a..b", "[::1"])
def test_malformed_entries_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="egress entry"):
        EgressRule.parse(text)


def addr(*texts: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return [ipaddress.ip_address(t) for t in texts]


def test_default_policy_allows_public_web_ports_only() -> None:
    policy = EgressPolicy()
    assert policy.check("https", "example.org", addr("93.184.216.34"), 443) is None
    assert policy.check("http", "example.org", addr("93.184.216.34"), 80) is None
    assert policy.check("http", "example.org", addr("93.184.216.34"), 8080) == (
        "port 8080 is not allowed (allowed: 80, 443; add one with --web-port)"
    )
    assert policy.check("ftp", "example.org", addr("93.184.216.34"), 21) == (
        "scheme 'ftp' is not allowed (only http and https)"
    )
    assert policy.check("http", "10.0.0.5", addr("10.0.0.5"), 80) == "10.0.0.5 is private"
    assert policy.check("http", "intranet.test", addr("10.0.0.5"), 80) == (
        "intranet.test resolves to 10.0.0.5, which is private"
    )


def test_every_answer_must_pass_not_just_the_first() -> None:
    reason = EgressPolicy().check("http", "mixed.test", addr("93.184.216.34", "10.0.0.5"), 80)
    assert reason == "mixed.test resolves to 10.0.0.5, which is private"


def test_allow_entries_open_addresses_and_ports() -> None:
    loopback = EgressPolicy.from_entries(allow=["127.0.0.1"])
    assert loopback.check("http", "127.0.0.1", addr("127.0.0.1"), 80) is None
    assert loopback.check("http", "127.0.0.1", addr("127.0.0.1"), 8080) == (
        "port 8080 is not allowed (allowed: 80, 443; add one with --web-port)"
    )
    assert loopback.check("http", "127.0.0.2", addr("127.0.0.2"), 80) == "127.0.0.2 is loopback"
    with_port = EgressPolicy.from_entries(allow=["127.0.0.1:8080"])
    assert with_port.check("http", "127.0.0.1", addr("127.0.0.1"), 8080) is None
    assert with_port.check("http", "localhost", addr("::ffff:127.0.0.1"), 8080) is None
    assert with_port.check("http", "127.0.0.1", addr("127.0.0.1"), 80) == "127.0.0.1 is loopback"
    by_name = EgressPolicy.from_entries(allow=["*.corp.example"])
    assert by_name.check("https", "wiki.corp.example", addr("10.2.3.4"), 443) is None
    assert by_name.check("https", "corp.example.evil.test", addr("10.2.3.4"), 443) is not None
    ports = EgressPolicy.from_entries(ports=[8080])
    assert ports.check("http", "example.org", addr("93.184.216.34"), 8080) is None
    assert ports.check("http", "example.org", addr("93.184.216.34"), 80) is not None


def test_deny_wins_over_allow_and_covers_mapped_forms() -> None:
    policy = EgressPolicy.from_entries(
        allow=["0.0.0.0/0", "::/0"], deny=["93.184.216.0/24", "*.tracker.test"]
    )
    assert policy.check("http", "example.org", addr("93.184.216.34"), 80) == (
        "example.org resolves to 93.184.216.34, which is denied by '93.184.216.0/24'"
    )
    assert policy.check("http", "example.org", addr("::ffff:93.184.216.34"), 80) is not None
    assert policy.check_name("http", "ads.tracker.test", 80) == (
        "ads.tracker.test is denied by '*.tracker.test'"
    )


def test_the_store_is_refused_even_when_allowed() -> None:
    settings = WebSettings(
        mode="live",
        allow=("127.0.0.0/8:5432", "db.internal.test:5432"),
        store_url="postgresql://ise:secret@db.internal.test:5432/corpus",
    )
    policy = settings.policy(resolver=lambda host, port: ["127.0.0.1"])
    assert policy.check("http", "127.0.0.1", addr("127.0.0.1"), 5432) == (
        "127.0.0.1:5432 is the event store's own database"
    )
    assert policy.check("http", "x.test", addr("::ffff:127.0.0.1"), 5432) == (
        "x.test resolves to [::ffff:127.0.0.1]:5432, which is the event store's own database"
    )
    assert policy.check_name("http", "DB.internal.test", 5432) == (
        "DB.internal.test:5432 is the event store's own database"
    )
    assert policy.check("http", "127.0.0.2", addr("127.0.0.2"), 5432) is None


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("sqlite:///corpus.db", None),
        ("postgresql://u:p@127.0.0.1/corpus", ("127.0.0.1", 5432)),
        ("postgresql+psycopg://u:p@db.test:6543/corpus", ("db.test", 6543)),
        ("postgresql:///corpus?host=/var/run/postgresql", None),
        ("postgresql:///corpus?host=db.test&port=7000", ("db.test", 7000)),
    ],
)
def test_store_endpoint_from_the_db_url(url: str, endpoint: tuple[str, int] | None) -> None:
    assert store_endpoint(url) == endpoint
