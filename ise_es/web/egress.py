"""The egress policy of the live web gateway: which destinations the agent's requests may reach.

The agent chooses the URLs it fetches, so a gateway that fetched whatever it was asked would let
it read the cloud metadata service (169.254.169.254), the corpus's own PostgreSQL or an
intranet (server-side request forgery). The policy decides on the *resolved address*, never on
the name alone, and the gateway connects to exactly the address that was checked.

A destination (scheme, host name, resolved addresses, port) is decided by the first rule that
applies:

1. the scheme is http or https, else refused;
2. a `deny` entry that matches refuses it (deny always wins);
3. the event store's own address and port are refused, always (the agent has no business with
   the corpus database, whatever else is allowed);
4. an `allow` entry that matches lets it through: an entry with a port allows that port, an
   entry without one allows the allowed ports;
5. special-purpose addresses are refused (`special_purpose`: loopback, RFC 1918 private,
   link-local, CGNAT, multicast, reserved, documentation, IPv6 unique-local and link-local, and
   IPv4-mapped, -compatible, 6to4 and NAT64 forms of all of them);
6. the port must be one of the allowed ports (80 and 443 by default).

Entries (`--web-allow`, `--web-deny`) are an address or network (`10.1.0.0/16`, `::1`), a host
name (`docs.example.com`) or a wildcard (`*.example.com`: any name below example.com), each
optionally with a port (`127.0.0.1:8080`, `[::1]:8080`, `*.corp.example:8443`). An address entry
also matches the IPv4-mapped and tunnelled forms of the addresses it covers.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ise_es.errors import ConfigError

__all__ = [
    "DEFAULT_PORTS",
    "EgressPolicy",
    "EgressRule",
    "IPAddress",
    "embedded_ipv4",
    "parse_ip_literal",
    "show",
    "special_purpose",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_PORTS = (80, 443)

# Refused unless allowed, most specific first: the first match names the reason. Sources: the
# IANA IPv4 and IPv6 special-purpose address registries (RFC 6890 and successors).
_V4_SPECIAL: tuple[tuple[str, str], ...] = (
    ("255.255.255.255/32", "broadcast"),
    ("0.0.0.0/8", "unspecified ('this network')"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (CGNAT, 100.64.0.0/10)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.169.254/32", "link-local (the cloud metadata service)"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved (IETF protocol assignments)"),
    ("192.0.2.0/24", "reserved (documentation)"),
    ("192.88.99.0/24", "reserved (6to4 relay anycast)"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved (benchmarking)"),
    ("198.51.100.0/24", "reserved (documentation)"),
    ("203.0.113.0/24", "reserved (documentation)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
)
_V6_SPECIAL: tuple[tuple[str, str], ...] = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "reserved (local-use NAT64)"),
    ("100::/64", "reserved (discard-only)"),
    ("2001::/32", "reserved (Teredo tunnel)"),
    ("2001::/23", "reserved (IETF protocol assignments)"),
    ("2001:db8::/32", "reserved (documentation)"),
    ("fc00::/7", "unique local (IPv6 ULA, fc00::/7)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "reserved (site-local)"),
    ("ff00::/8", "multicast"),
)
_V4_TABLE = tuple((ipaddress.IPv4Network(n), why) for n, why in _V4_SPECIAL)
_V6_TABLE = tuple((ipaddress.IPv6Network(n), why) for n, why in _V6_SPECIAL)
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_COMPATIBLE = ipaddress.IPv6Network("::/96")


def embedded_ipv4(address: IPAddress) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address carries, with the form's name: IPv4-mapped
    (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d) or 6to4
    (2002:AABB:CCDD::). A packet to any of these can end up at the IPv4 address."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", address.ipv4_mapped
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    if address in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _COMPATIBLE and int(address) > 1:
        return "IPv4-compatible", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def show(address: IPAddress) -> str:
    """An address as people write it: IPv4-mapped ones as ::ffff:a.b.c.d (Python before 3.13
    prints ::ffff:a00:5)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def special_purpose(address: IPAddress) -> str | None:
    """Why `address` is refused by default ("private", "loopback", ...), or None for a public
    unicast address."""
    embedded = embedded_ipv4(address)
    if embedded is not None:
        form, inner = embedded
        why = special_purpose(inner)
        article = "an" if form.startswith("IPv4") else "a"
        return f"{article} {form} form of {inner}, which is {why}" if why else None
    if isinstance(address, ipaddress.IPv4Address):
        return next((why for net, why in _V4_TABLE if address in net), None)
    for net, why in _V6_TABLE:
        if address in net:
            return why
    if address not in _GLOBAL_UNICAST:
        return "reserved (outside IPv6 global unicast 2000::/3)"
    return None


_INET_ATON = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$", re.IGNORECASE)


def parse_ip_literal(host: str) -> IPAddress | None:
    """`host` as an address when it is one, in any notation a C resolver accepts: dotted quad,
    IPv6 (with or without brackets and zone), and the inet_aton shorthands (`127.1`,
    `2130706433`, `0x7f.1`) that would otherwise slip past a check of the name and resolve to
    the address they spell."""
    text = host.strip().strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if _INET_ATON.match(text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def _normalise_name(name: str) -> str:
    return name.strip().rstrip(".").lower()


@dataclass(frozen=True)
class EgressRule:
    """One `--web-allow`/`--web-deny` entry: an address network or a host name pattern, and an
    optional port."""

    text: str
    network: IPNetwork | None = None
    host: str | None = None
    """An exact name, or `*.suffix` for every name below `suffix`, or `*` for every name."""
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> EgressRule:
        """Raises ConfigError naming the entry when it is neither an address, a network nor a
        host pattern, or its port is not a number in 1-65535."""
        entry = text.strip()
        body, port = entry, None
        if entry.startswith("["):
            inner, closed, rest = entry[1:].partition("]")
            if not closed:
                raise ConfigError(f"egress entry {text!r} has an unclosed '['")
            body = inner
            if rest:
                port = _port(rest.removeprefix(":"), text)
        elif entry.count(":") == 1:
            body, _, port_text = entry.partition(":")
            port = _port(port_text, text)
        if not body:
            raise ConfigError(f"egress entry {text!r} names no host or network")
        try:
            network = ipaddress.ip_network(body, strict=False)
        except ValueError:
            network = None
        if network is not None:
            return cls(text=entry, network=network, port=port)
        literal = parse_ip_literal(body)
        if literal is not None:
            return cls(text=entry, network=ipaddress.ip_network(literal), port=port)
        name = _normalise_name(body)
        label = r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?"
        if name != "*" and not re.fullmatch(rf"(\*\.)?{label}(\.{label})*", name):
            raise ConfigError(
                f"egress entry {text!r} is not an address, a network (10.0.0.0/8) or a host "
                "name pattern (docs.example.com, *.example.com), optionally with :PORT"
            )
        return cls(text=entry, host=name, port=port)

    def matches_name(self, name: str) -> bool:
        if self.host is None:
            return False
        name = _normalise_name(name)
        if self.host == "*":
            return True
        if self.host.startswith("*."):
            return name.endswith(self.host[1:])
        return name == self.host

    def matches_address(self, address: IPAddress) -> bool:
        if self.network is None:
            return False
        candidates: list[IPAddress] = [address]
        embedded = embedded_ipv4(address)
        if embedded is not None:
            candidates.append(embedded[1])
        return any(c.version == self.network.version and c in self.network for c in candidates)

    def matches(self, name: str, addresses: Sequence[IPAddress], port: int) -> bool:
        """Whether the entry covers the destination, ignoring the port when it names none."""
        if self.port is not None and self.port != port:
            return False
        if self.matches_name(name):
            return True
        return bool(addresses) and all(self.matches_address(a) for a in addresses)


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigError(f"egress entry {entry!r}: {text!r} is not a port number (1-65535)")
    return int(text)


@dataclass(frozen=True)
class EgressPolicy:
    """The rules of the module docstring. `check*` return the refusal's reason (the text after
    `blocked by egress policy: `), or None when the destination may be reached."""

    allow: tuple[EgressRule, ...] = ()
    deny: tuple[EgressRule, ...] = ()
    ports: tuple[int, ...] = DEFAULT_PORTS
    store: frozenset[tuple[IPAddress, int]] = field(default_factory=frozenset)
    """The event store's (address, port) pairs, refused whatever else is allowed."""
    store_name: tuple[str, int] | None = None
    """The store's host name and port as its URL spells them."""

    @classmethod
    def from_entries(
        cls,
        *,
        allow: Iterable[str] = (),
        deny: Iterable[str] = (),
        ports: Iterable[int] = DEFAULT_PORTS,
        store: Iterable[tuple[str, int]] = (),
        store_name: tuple[str, int] | None = None,
    ) -> EgressPolicy:
        """Raises ConfigError for a malformed entry."""
        pinned = frozenset(
            (address, port)
            for host, port in store
            if (address := parse_ip_literal(host)) is not None
        )
        return cls(
            allow=tuple(EgressRule.parse(e) for e in allow),
            deny=tuple(EgressRule.parse(e) for e in deny),
            ports=tuple(sorted(set(ports))) or DEFAULT_PORTS,
            store=pinned,
            store_name=(_normalise_name(store_name[0]), store_name[1]) if store_name else None,
        )

    def check_name(self, scheme: str, name: str, port: int) -> str | None:
        """What can be decided before resolving `name` (so a denied name is never even looked
        up): the scheme, deny entries by name, and the store's host name."""
        if scheme not in ("http", "https"):
            return f"scheme {scheme or '(none)'!r} is not allowed (only http and https)"
        for rule in self.deny:
            if rule.matches_name(name) and rule.port in (None, port):
                return f"{name} is denied by {rule.text!r}"
        if self.store_name is not None and self.store_name == (_normalise_name(name), port):
            return f"{name}:{port} is the event store's own database"
        return None

    def check(
        self,
        scheme: str,
        name: str,
        addresses: Sequence[IPAddress],
        port: int,
        *,
        operator_configured: bool = False,
    ) -> str | None:
        """Decide one destination (`addresses`: every address `name` resolved to, all of which
        must pass). `operator_configured` (the search provider's endpoint, which the agent does
        not choose) skips rules 4-6 and keeps deny entries and the store."""
        reason = self.check_name(scheme, name, port)
        if reason is not None:
            return reason
        if not addresses:
            return f"{name} resolved to no address"
        by_name = parse_ip_literal(name) is None

        def says(subject: str, what: str) -> str:
            return (
                f"{name} resolves to {subject}, which is {what}"
                if by_name
                else f"{subject} is {what}"
            )

        for address in addresses:
            for rule in self.deny:
                if rule.port in (None, port) and rule.matches_address(address):
                    return says(show(address), f"denied by {rule.text!r}")
            if any(self._is_store(candidate, port) for candidate in _forms(address)):
                where = f"[{show(address)}]:{port}" if address.version == 6 else f"{address}:{port}"
                return says(where, "the event store's own database")
        if operator_configured:
            return None
        allowed = [rule for rule in self.allow if rule.matches(name, addresses, port)]
        if any(rule.port == port for rule in allowed):
            return None
        if not allowed:
            for address in addresses:
                why = special_purpose(address)
                if why is not None:
                    return says(show(address), why)
        if port not in self.ports:
            listed = ", ".join(str(p) for p in self.ports)
            return f"port {port} is not allowed (allowed: {listed}; add one with --web-port)"
        return None

    def _is_store(self, address: IPAddress, port: int) -> bool:
        return (address, port) in self.store

    def describe(self) -> dict[str, list[str] | list[int]]:
        """The policy as recorded in SessionStarted (entries as written)."""
        return {
            "allow": [r.text for r in self.allow],
            "deny": [r.text for r in self.deny],
            "ports": list(self.ports),
        }


def _forms(address: IPAddress) -> list[IPAddress]:
    embedded = embedded_ipv4(address)
    return [address] if embedded is None else [address, embedded[1]]
