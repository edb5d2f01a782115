"""A loopback "internet" for the live gateway's tests.

Nothing here sends a packet beyond 127.0.0.1. Test names resolve (through an injected
resolver) to whatever addresses a test wants: private, link-local, mapped or public. The
injected connector is the connect guard: a connection to a public test address is routed to a
real HTTP server on loopback (so the gateway believes it reached the internet), a connection to
a loopback address goes there, and any other connection fails the test on the spot.
"""

from __future__ import annotations

import itertools
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ise_es.events import Event, HttpExchange, ToolCall, ToolCallFinished
from ise_es.sandbox import Sandbox, open_sandbox
from ise_es.store.sql import SqlEventStore, open_store
from ise_es.tools import ToolRunner
from ise_es.tools.web import WebGateway
from ise_es.web import EgressPolicy, LiveWebGateway, WebLimits
from ise_es.web.egress import parse_ip_literal

PUBLIC = "93.184.216.34"
"""A public address the gateway may reach; the guard routes it to a loopback server."""
PUBLIC_2 = "2606:2800:220:1:248:1893:25c8:1946"


# ---------------------------------------------------------------------------------- servers


Route = tuple[int, dict[str, str], bytes]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class LoopbackServer:
    """A real HTTP(S) server on 127.0.0.1 answering from `routes` (path with query -> status,
    headers, body, or a callable of the request); every request it saw is in `seen`."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Route | Callable[[Seen], Route]] = {}
        self.seen: list[Seen] = []
        self.sni: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                server.seen.append(seen)
                route = server.routes.get(self.path) or server.routes.get(self.path.split("?")[0])
                if route is None:
                    route = (404, {"Content-Type": "text/plain"}, b"not found")
                status, headers, body = route(seen) if callable(route) else route
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            do_GET = _answer
            do_POST = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if context is not None:

            def remember(sock: ssl.SSLObject, name: str, ctx: ssl.SSLContext) -> None:
                self.sni.append(name)

            context.sni_callback = remember
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def page(self, path: str, html: str, status: int = 200, **headers: str) -> None:
        self.routes[path] = (
            status,
            {"Content-Type": "text/html; charset=utf-8", **headers},
            html.encode(),
        )

    def json(self, path: str, payload: Any, status: int = 200) -> None:
        self.routes[path] = (
            status,
            {"Content-Type": "application/json"},
            json.dumps(payload).encode(),
        )

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        self.routes[path] = (status, {"Location": location, "Content-Type": "text/plain"}, b"")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    s = LoopbackServer()
    yield s
    s.close()


# ------------------------------------------------------------------ resolver and connect guard


@dataclass
class Internet:
    """The injected resolver (names -> answers, one list per successive lookup) and connector
    (the connect guard)."""

    names: dict[str, list[list[str]]] = field(default_factory=dict)
    routes: dict[tuple[str, int], int] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)
    connects: list[tuple[str, int]] = field(default_factory=list)

    def name(self, host: str, *answers: list[str]) -> None:
        """`host` resolves to answers[0] the first time, answers[1] the second, ... (the last
        one from then on)."""
        self.names[host] = list(answers)

    def route(self, address: str, port: int, to: LoopbackServer) -> None:
        self.routes[(address, port)] = to.port

    def resolve(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        answers = self.names.get(host)
        if answers is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def connect(self, address: tuple[str, int], timeout: float) -> socket.socket:
        host, port = address
        ip = parse_ip_literal(host)
        if ip is None:
            pytest.fail(f"the gateway connected to a name, not to a checked address: {host!r}")
        self.connects.append((host, port))
        if (host, port) in self.routes:
            return socket.create_connection(("127.0.0.1", self.routes[(host, port)]), timeout)
        if ip.is_loopback:
            return socket.create_connection((host, port), timeout)
        pytest.fail(f"connection attempted to a non-loopback address {host}:{port}")


@pytest.fixture
def internet() -> Internet:
    return Internet()


# ----------------------------------------------------------------------- tool runner harness


@pytest.fixture(scope="session")
def web_sandbox(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[Sandbox]:
    """Web tools never touch the sandbox, but they run through the real ToolRunner, which needs
    one."""
    path = tmp_path_factory.mktemp("web-sandbox") / "blobs.db"
    shutil.copyfile(sqlite_template, path)
    store = open_store(f"sqlite:///{path}")
    sandbox = open_sandbox("local", "empty", blobs=store)
    yield sandbox
    sandbox.close()
    store.close()


@dataclass
class Agent:
    """Tool calls through a ToolRunner, with the events they emitted."""

    runner: ToolRunner
    events: list[Event]
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def call(self, tool: str, **args: Any) -> ToolCallFinished:
        n = next(self._ids)
        call = ToolCall(id=f"call_{n}", name=tool, arguments=json.dumps(args))
        return self.runner.run(call, turn=1, step=n, index=n)

    def exchanges(self, finished: ToolCallFinished | None = None) -> list[HttpExchange]:
        return [
            e
            for e in self.events
            if isinstance(e, HttpExchange) and (finished is None or e.call_id == finished.call_id)
        ]


MakeAgent = Callable[..., Agent]


@pytest.fixture
def make_agent(web_sandbox: Sandbox, blobs: SqlEventStore) -> Iterator[MakeAgent]:
    runners: list[ToolRunner] = []

    def make(gateway: WebGateway) -> Agent:
        events: list[Event] = []
        runner = ToolRunner(web_sandbox, blobs, gateway, events.append)
        runners.append(runner)
        return Agent(runner, events)

    yield make
    for runner in runners:
        runner.close()


MakeLive = Callable[..., LiveWebGateway]


@pytest.fixture
def make_live(internet: Internet) -> MakeLive:
    """A live gateway wired to the test resolver and connect guard."""

    def make(
        *,
        allow: tuple[str, ...] = (),
        deny: tuple[str, ...] = (),
        ports: tuple[int, ...] = (80, 443),
        limits: WebLimits | None = None,
        **kwargs: Any,
    ) -> LiveWebGateway:
        policy = EgressPolicy.from_entries(allow=allow, deny=deny, ports=ports)
        return LiveWebGateway(
            policy,
            limits=limits,
            resolver=internet.resolve,
            connector=internet.connect,
            **kwargs,
        )

    return make


# ------------------------------------------------------------------------------------ TLS


@dataclass(frozen=True)
class Authority:
    ca: Path
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    """A throwaway CA and a certificate for `secure.test` signed by it (openssl CLI)."""
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=ise-es test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=secure.test")
    (d / "ext.cnf").write_text(
        "subjectAltName=DNS:secure.test\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    return Authority(d / "ca.pem", d / "leaf.pem", d / "leaf.key")


def wait_closed(port: int, timeout: float = 5.0) -> None:
    """Until nothing accepts on 127.0.0.1:`port` (the server is really gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
        except OSError:
            return
        time.sleep(0.05)
    raise AssertionError(f"something still listens on 127.0.0.1:{port}")
