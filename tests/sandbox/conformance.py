"""The behaviour every Sandbox backend must show; subclassed once per backend.

A backend that cannot do something yet lists the test in `known_gaps` with the reason: the test
still runs and is expected to fail (strict xfail, see conftest), so a closed gap shows up.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import ClassVar

import pexpect
import pytest

from ise_es.errors import SandboxUnavailable, TemplateError, ToolError
from ise_es.events import FileChange
from ise_es.sandbox import Limits, Sandbox
from ise_es.sandbox.templates import load_template
from ise_es.store.sql import SqlEventStore
from tests.sandbox.conftest import OpenSandbox

MB = 1 << 20


def host_processes_with(marker: str) -> list[int]:
    """Host pids whose command line contains `marker` (sandboxed processes are host processes)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cmdline = Path("/proc", entry, "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry))
    return found


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def by_path(changes: list[FileChange]) -> dict[str, FileChange]:
    return {c.path: c for c in changes}


class SandboxConformance:
    backend: ClassVar[str]
    known_gaps: ClassVar[dict[str, str]] = {}

    def assert_freed(self, sb: Sandbox) -> None:
        raise NotImplementedError

    # -- exec and output ------------------------------------------------------------------

    def test_exec_reports_exit_code_and_streams(self, make_sandbox: OpenSandbox) -> None:
        sb = make_sandbox()
        chunks: list[tuple[str, bytes]] = []
        r = sb.exec("echo out; echo err >&2; exit 3", on_chunk=lambda s, b: chunks.append((s, b)))
        assert r.exit_code == 3 and not r.timed_out and r.signal is None
        assert r.stdout == b"out\n" and r.stderr == b"err\n"
        assert b"".join(b for s, b in chunks if s == "stdout") == b"out\n"
        assert b"".join(b for s, b in chunks if s == "stderr") == b"err\n"
        assert r.stdout_digest == hashlib.sha256(b"out\n").hexdigest()

    def test_argv_command_and_stdin(self, make_sandbox: OpenSandbox) -> None:
        sb = make_sandbox()
        data = os.urandom(300_000)  # more than a pipe buffer, both ways
        r = sb.exec(["cat"], stdin=data)
        assert r.exit_code == 0 and r.stdout_size == len(data)
        assert r.stdout_digest == hashlib.sha256(data).hexdigest()

    def test_output_order_kept_per_stream(self, make_sandbox: OpenSandbox) -> None:
        sb = make_sandbox()
        script = (
            "import sys,time\n"
            "for i in range(200):\n"
            "    s = sys.stdout if i % 3 else sys.stderr\n"
            "    s.write(f'{i}\\n'); s.flush()\n"
            "    if i % 50 == 0: time.sleep(0.01)\n"
        )
        chunks: list[tuple[str, bytes]] = []
        r = sb.exec(["python3", "-c", script], on_chunk=lambda s, b: chunks.append((s, b)))
        want_out = "".join(f"{i}\n" for i in range(200) if i % 3).encode()
        want_err = "".join(f"{i}\n" for i in range(200) if not i % 3).encode()
        assert b"".join(b for s, b in chunks if s == "stdout") == want_out == r.stdout
        assert b"".join(b for s, b in chunks if s == "stderr") == want_err == r.stderr

    def test_non_utf8_output_is_byte_exact(
        self, make_sandbox: OpenSandbox, blobs: SqlEventStore
    ) -> None:
        sb = make_sandbox()
        data = bytes(range(256)) * 4 + b"\xff\xfe\xc3\x28\x00"
        sb.write_file("raw.bin", data)
        chunks: list[bytes] = []
        r = sb.exec("cat raw.bin; cat raw.bin >&2", on_chunk=lambda s, b: chunks.append(b))
        assert r.stdout == data and r.stderr == data
        assert r.stdout_digest is not None and blobs.get_blob(r.stdout_digest) == data

    def test_large_output_head_tail_blob_and_bounded_memory(
        self, make_sandbox: OpenSandbox, blobs: SqlEventStore
    ) -> None:
        limits = Limits(output_head_bytes=64 * 1024)
        sb = make_sandbox(limits=limits)
        size = 50 * MB
        line = b"0123456789abcdefghijklmnopqrstuvwxyz\n"
        full = (line * (size // len(line) + 1))[:size]
        base = rss_bytes()
        peak = [base]
        streamed = [0]

        def on_chunk(stream: str, data: bytes) -> None:
            streamed[0] += len(data)
            if streamed[0] % (4 * MB) < len(data):
                peak[0] = max(peak[0], rss_bytes())

        r = sb.exec(f"yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c {size}", on_chunk=on_chunk)
        assert r.exit_code == 0 and streamed[0] == size == r.stdout_size
        assert r.truncated
        assert r.stdout == full[: 64 * 1024] + full[-64 * 1024 :]
        assert r.stdout_digest == hashlib.sha256(full).hexdigest()
        assert hashlib.sha256(blobs.get_blob(r.stdout_digest)).hexdigest() == r.stdout_digest
        # While 50 MB stream through, the process holds head + tail + a spool buffer.
        assert peak[0] - base < 16 * MB, f"RSS grew {(peak[0] - base) / MB:.1f} MB"

    def test_output_over_blob_cap_keeps_digest_only(
        self, make_sandbox: OpenSandbox, blobs: SqlEventStore
    ) -> None:
        sb = make_sandbox(limits=Limits(output_head_bytes=1024, blob_cap_bytes=100_000))
        r = sb.exec("head -c 200000 /dev/zero")
        assert r.stdout_size == 200_000 and r.truncated and len(r.stdout) == 2048
        assert r.stdout_digest == hashlib.sha256(bytes(200_000)).hexdigest()
        assert not blobs.has_blob(r.stdout_digest)

    def test_pinned_environment_and_no_host_leak(
        self, make_sandbox: OpenSandbox, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ISE_ES_HOST_SECRET", "s3cret")
        sb = make_sandbox(environment={"SOURCE_DATE_EPOCH": "1234567890"})
        r = sb.exec('echo "$TZ|$LANG|$SOURCE_DATE_EPOCH|$HOME|$(pwd)|$FOO"; env', env={"FOO": "x"})
        first = r.stdout.decode().splitlines()[0]
        assert first == f"UTC|C.UTF-8|1234567890|{sb.workspace_path}|{sb.workspace_path}|x"
        assert b"s3cret" not in r.stdout
        assert sb.environment["SOURCE_DATE_EPOCH"] == "1234567890"

    # -- isolation ------------------------------------------------------------------------

    def test_no_network(self, make_sandbox: OpenSandbox) -> None:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.settimeout(0.2)
        port = server.getsockname()[1]
        accepted: list[tuple[socket.socket, object]] = []

        def accept() -> None:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not stop.is_set():
                try:
                    accepted.append(server.accept())
                except TimeoutError:
                    continue

        stop = threading.Event()
        t = threading.Thread(target=accept)
        t.start()
        try:
            sb = make_sandbox()
            probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)"
            r = sb.exec(["python3", "-c", probe], timeout=20)
            # the host side of the check is reachable from here
            socket.create_connection(("127.0.0.1", port), timeout=3).close()
        finally:
            time.sleep(0.3)
            stop.set()
            t.join()
            server.close()
            for conn, _ in accepted:
                conn.close()
        assert r.exit_code not in (0, None)
        assert b"Error" in r.stderr  # ConnectionRefusedError / OSError: unreachable
        assert len(accepted) == 1, "only the host's own probe may connect"

    def test_kill_all_inside_spares_host(self, make_sandbox: OpenSandbox) -> None:
        host = subprocess.Popen(["sleep", "60"])
        try:
            sb = make_sandbox()
            r = sb.exec("kill -9 -1; echo still-here", timeout=20)
            time.sleep(0.2)
            assert host.poll() is None, "a host process was killed from inside the sandbox"
            assert sb.exec("echo alive").stdout == b"alive\n"
            del r
        finally:
            host.kill()
            host.wait()

    def test_fork_bomb_is_contained(self, make_sandbox: OpenSandbox) -> None:
        sb = make_sandbox(limits=Limits(processes=64))
        r = sb.exec("bomb() { bomb | bomb & }; bomb; sleep 3", timeout=15)
        # the shell itself survives the bomb: its last command runs and decides the exit code
        assert r.exit_code == 0 and not r.timed_out and r.signal is None
        assert b"Resource temporarily unavailable" in r.stderr
        assert subprocess.run(["true"]).returncode == 0
        assert sb.exec("echo ok", timeout=20).stdout == b"ok\n"

    def test_writes_outside_workspace_fail(self, make_sandbox: OpenSandbox) -> None:
        sb = make_sandbox()
        for target in ("/usr/ise-es-probe", "/etc/ise-es-probe", "/ise-es-probe"):
            r = sb.exec(f"echo x > {target}")
            assert r.exit_code != 0, target
            assert not os.path.exists(target)
        assert sb.exec("echo x > inside && cat inside").stdout == b"x\n"

    def test_host_private_paths_invisible(self, make_sandbox: OpenSandbox) -> None:
        sb = make_sandbox()
        here = os.path.dirname(os.path.abspath(__file__))
        r = sb.exec(f"ls /root; ls {here}; ls /work; cat /etc/shadow")
        assert r.stdout == b""
        assert r.exit_code != 0

    def test_timeout_kills_whole_tree(self, make_sandbox: OpenSandbox) -> None:
        sb = make_sandbox()
        t0 = time.monotonic()
        r = sb.exec("sleep 100.25 & (sleep 100.25 &); sleep 100.25", timeout=1)
        elapsed = time.monotonic() - t0
        assert r.timed_out and r.exit_code is None and r.signal == 9
        assert elapsed < 3.0
        deadline = time.monotonic() + 1.0
        while host_processes_with("100.25") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert host_processes_with("100.25") == []

    def test_kill_running_ends_a_command_in_flight_at_once(self, make_sandbox: OpenSandbox) -> None:
        sb = make_sandbox()
        results = []
        worker = threading.Thread(target=lambda: results.append(sb.exec("sleep 30.75")))
        t0 = time.monotonic()
        worker.start()
        time.sleep(0.5)
        sb.kill_running()
        worker.join(timeout=5)
        assert not worker.is_alive() and time.monotonic() - t0 < 3.0
        assert results[0].exit_code != 0 and host_processes_with("30.75") == []
        assert sb.exec("echo still usable").stdout.strip() == b"still usable"

    def test_background_processes_end_with_the_command(self, make_sandbox: OpenSandbox) -> None:
        sb = make_sandbox()
        t0 = time.monotonic()
        r = sb.exec("sleep 30.5 & (sleep 30.5 >/dev/null 2>&1 &); echo started")
        assert r.exit_code == 0 and r.stdout == b"started\n"
        assert time.monotonic() - t0 < 1.5
        deadline = time.monotonic() + 1.0
        while host_processes_with("30.5") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert host_processes_with("30.5") == []

    def test_memory_limit(self, make_sandbox: OpenSandbox) -> None:
        sb = make_sandbox(limits=Limits(memory_bytes=256 * MB))
        r = sb.exec(["python3", "-c", "b = bytearray(600 * 1024 * 1024); print('allocated')"])
        assert r.exit_code != 0 and b"allocated" not in r.stdout

    def test_file_size_limit(self, make_sandbox: OpenSandbox) -> None:
        sb = make_sandbox(limits=Limits(file_size_bytes=1 * MB))
        for big in ("big", "/tmp/big", "/var/tmp/big"):
            r = sb.exec(f"head -c 3000000 /dev/zero > {big}")
            assert r.exit_code != 0, big
            assert int(sb.exec(f"stat -c %s {big}").stdout) <= 1 * MB

    def test_two_sandboxes_do_not_see_each_other(self, make_sandbox: OpenSandbox) -> None:
        a, b = make_sandbox(), make_sandbox()
        a.exec("echo from-a > mine; rm README.md")
        assert b.exec("ls").stdout.split() == [b"README.md", b"pyproject.toml", b"src", b"tests"]
        assert b.exec("cat mine").exit_code != 0
        b.write_file("only-b", b"b")
        assert a.exec("test -e only-b").exit_code == 1
        assert a.read_file("mine") == b"from-a\n"
        tpl = load_template("pyproject")
        assert tpl.path is not None and Path(tpl.path, "README.md").exists()
        assert not Path(tpl.path, "mine").exists()

    # -- the machine outside the workspace -------------------------------------------------

    @pytest.mark.parametrize("place", ["/tmp", "/var/tmp", "/dev/shm", "$HOME"])
    def test_state_outside_workspace_persists_across_commands(
        self, make_sandbox: OpenSandbox, place: str
    ) -> None:
        sb = make_sandbox()
        made = sb.exec(f"mkdir -p {place}/keep && echo hi > {place}/keep/x && ln -s x {place}/l")
        assert made.exit_code == 0, made.stderr
        r = sb.exec(f"cat {place}/keep/x && readlink {place}/l")
        assert (r.exit_code, r.stdout, r.stderr) == (0, b"hi\nx\n", b"")
        assert sb.exec(["cat", f"{place}/keep/x".replace("$HOME", sb.workspace_path)]).stdout == (
            b"hi\n"
        )
        # An interactive program (the process tool's route) sees the same machine.
        argv = sb.interactive_argv(f"cat {place}/keep/x; rm -r {place}/keep")
        child = pexpect.spawn(argv[0], argv[1:], timeout=20)
        child.expect("hi")
        child.expect(pexpect.EOF)
        child.close()
        assert sb.exec(f"test -e {place}/keep").exit_code == 1

    def test_scratch_places_are_writable_per_sandbox_and_hide_the_hosts(
        self, make_sandbox: OpenSandbox
    ) -> None:
        marker = Path("/tmp", f"ise-es-host-marker-{os.getpid()}")
        marker.write_text("host\n")
        try:
            a, b = make_sandbox(), make_sandbox()
            a.exec("echo a > /tmp/mine; echo a > /var/tmp/mine; echo a > /dev/shm/mine")
            for place in ("/tmp", "/var/tmp", "/dev/shm"):
                assert b.exec(f"test -e {place}/mine").exit_code == 1, place
                assert a.exec(f"test -e {place}/mine").exit_code == 0, place
            assert a.exec(f"test -e {marker}").exit_code == 1
            r = a.exec("stat -c %a /tmp /var/tmp /dev/shm; ls /tmp")
            assert r.stdout == b"1777\n1777\n1777\nmine\nworkspace\n"
        finally:
            marker.unlink()

    def test_diff_covers_the_workspace_only(self, make_sandbox: OpenSandbox) -> None:
        sb = make_sandbox()
        mark = sb.snapshot()
        r = sb.exec(
            "echo t > /tmp/t; mkdir -p /var/tmp/v && echo v > /var/tmp/v/f; echo s > /dev/shm/s; "
            "echo w > $HOME/.dotfile; echo n > new.txt"
        )
        assert r.exit_code == 0, r.stderr
        assert [(c.path, c.kind) for c in sb.diff(mark)] == [
            (".dotfile", "added"),
            ("new.txt", "added"),
        ]

    def test_absolute_and_relative_working_directories(self, make_sandbox: OpenSandbox) -> None:
        sb = make_sandbox()
        ws = sb.workspace_path
        assert sb.exec("mkdir -p /tmp/x/y && mkdir -p sub/dir").exit_code == 0
        assert sb.exec(["pwd"], workdir="/tmp/x").stdout == b"/tmp/x\n"
        r = sb.exec("pwd; echo made > here; echo $PWD", workdir="/tmp/x/y")
        assert (r.exit_code, r.stdout) == (0, b"/tmp/x/y\n/tmp/x/y\n")
        assert sb.exec("cat /tmp/x/y/here").stdout == b"made\n"
        assert sb.exec(["pwd"], workdir="/usr/bin").stdout == b"/usr/bin\n"
        assert sb.exec(["pwd"], workdir="/tmp/x/../x/y").stdout == b"/tmp/x/y\n"
        assert sb.exec(["pwd"], workdir="sub/dir").stdout == f"{ws}/sub/dir\n".encode()
        assert sb.exec("pwd", workdir=f"{ws}/sub").stdout == f"{ws}/sub\n".encode()
        assert sb.exec(["pwd"], workdir="sub/..").stdout == f"{ws}\n".encode()
        argv = sb.interactive_argv("pwd", workdir="/tmp/x")
        child = pexpect.spawn(argv[0], argv[1:], timeout=20)
        child.expect("/tmp/x")
        child.expect(pexpect.EOF)
        child.close()
        # A missing directory: refused before anything runs inside the workspace; outside it,
        # the command fails the same way on every backend (env -C: 125 and the reason).
        with pytest.raises(ToolError, match="not a directory"):
            sb.exec(["pwd"], workdir="sub/none")
        for missing in ("/tmp/none", "/etc/passwd"):
            for command in (["pwd"], "pwd"):
                r = sb.exec(command, workdir=missing)
                assert (r.exit_code, r.stdout) == (125, b""), (missing, command)
                assert r.stderr.startswith(b"/usr/bin/env: cannot change directory to ")
                assert missing.encode() in r.stderr

    def test_missing_or_non_executable_program_exits_like_a_shell(
        self, make_sandbox: OpenSandbox
    ) -> None:
        sb = make_sandbox()
        sb.write_file("not-executable-file", b"#!/bin/sh\necho ran\n")
        sb.exec("mkdir -p /tmp/x && cp not-executable-file /tmp/x/plain")
        cases = [
            (["no-such-prog"], None, 127, b"No such file or directory"),
            (["./no-such-prog", "arg"], None, 127, b"No such file or directory"),
            (["/usr/bin/no-such-prog"], "/tmp/x", 127, b"No such file or directory"),
            (["./not-executable-file"], None, 126, b"Permission denied"),
            (["./plain"], "/tmp/x", 126, b"Permission denied"),
            (["./src"], None, 126, b"Permission denied"),  # a directory
        ]
        for argv, workdir, code, reason in cases:
            r = sb.exec(argv, workdir=workdir)
            assert (r.exit_code, r.signal, r.stdout) == (code, None, b""), argv
            assert argv[0].encode() in r.stderr and reason in r.stderr, r.stderr
            assert b"bwrap" not in r.stderr and b"OCI" not in r.stderr
        # A program whose name starts with '-' or holds '=' is still the program.
        sb.write_file("-dash", b'#!/bin/sh\necho dash "$@"\n', mode=0o755)
        assert sb.exec(["./-dash", "--", "-x"]).stdout == b"dash -- -x\n"
        assert sb.exec(["./a=b"]).exit_code not in (0, None)
        sb.write_file("a=b", b"#!/bin/sh\necho eq\n", mode=0o755)
        assert sb.exec(["./a=b"]).stdout == b"eq\n"
        # The same programs in a shell command: bash's own codes.
        assert sb.exec("no-such-prog").exit_code == 127
        assert sb.exec("./not-executable-file").exit_code == 126
        # The program really runs once it can: argv, stdin and exit code go through.
        r = sb.exec(["sh", "-c", 'read l; echo "$0:$1:$l"; exit 7', "zero", "one"], stdin=b"in\n")
        assert (r.exit_code, r.stdout) == (7, b"zero:one:in\n")

    # -- files ----------------------------------------------------------------------------

    def test_read_write_file(self, make_sandbox: OpenSandbox) -> None:
        sb = make_sandbox()
        sb.write_file("deep/er/new.txt", b"hello\n")
        assert sb.read_file("deep/er/new.txt") == b"hello\n"
        assert sb.read_file(f"{sb.workspace_path}/deep/er/new.txt") == b"hello\n"
        r = sb.exec("stat -c '%u %a' deep/er/new.txt deep; echo more >> deep/er/new.txt")
        assert r.stdout == b"1000 644\n1000 755\n"
        assert sb.read_file("deep/er/new.txt") == b"hello\nmore\n"
        sb.write_file("run.sh", b"#!/bin/sh\necho ran\n", mode=0o755)
        assert sb.exec("./run.sh").stdout == b"ran\n"
        with pytest.raises(FileNotFoundError):
            sb.read_file("nope.txt")

    @pytest.mark.parametrize("path", ["../escape", "/etc/passwd", "a/../../x", "link-out/x"])
    def test_paths_escaping_workspace_refused(self, make_sandbox: OpenSandbox, path: str) -> None:
        sb = make_sandbox()
        sb.exec("ln -s /etc link-out; ln -s ../../etc/passwd up")
        with pytest.raises(ToolError):
            sb.read_file(path)
        with pytest.raises(ToolError):
            sb.write_file(path, b"x")
        with pytest.raises(ToolError):
            sb.read_file("up")

    def test_symlink_inside_workspace_followed(self, make_sandbox: OpenSandbox) -> None:
        sb = make_sandbox()
        sb.exec(f"ln -s {sb.workspace_path}/README.md abs; ln -s src/mathkit rel")
        assert sb.read_file("abs").startswith(b"# mathkit")
        assert sb.read_file("rel/numbers.py").startswith(b"def mean")

    def test_interactive_argv(self, make_sandbox: OpenSandbox) -> None:
        sb = make_sandbox()
        argv = sb.interactive_argv("read -r x; echo got:$x:$(id -u):$SOURCE_DATE_EPOCH")
        child = pexpect.spawn(argv[0], argv[1:], timeout=20)
        child.sendline("hi")
        child.expect(r"got:hi:1000:1704067200")
        child.expect(pexpect.EOF)
        child.close()

    # -- diffs ----------------------------------------------------------------------------

    def test_diff_kinds(self, make_sandbox: OpenSandbox, blobs: SqlEventStore) -> None:
        sb = make_sandbox()
        mark = sb.snapshot()
        r = sb.exec(
            "echo new > added.txt; echo '# x' >> README.md; rm pyproject.toml; "
            "chmod 755 tests/test_mathkit.py; ln -s README.md readme-link; mkdir -p newdir; "
            "rm -rf src/mathkit; touch tests/__init__.py"
        )
        assert r.exit_code == 0
        changes = sb.diff(mark)
        assert [c.path for c in changes] == sorted(c.path for c in changes)
        got = by_path(changes)
        assert set(got) == {
            "added.txt",
            "README.md",
            "pyproject.toml",
            "tests/test_mathkit.py",
            "readme-link",
            "newdir",
            "src/mathkit",
            "src/mathkit/__init__.py",
            "src/mathkit/numbers.py",
            "src/mathkit/text.py",
        }
        assert got["added.txt"].kind == "added"
        assert got["added.txt"].digest == hashlib.sha256(b"new\n").hexdigest()
        assert got["added.txt"].stored and blobs.get_blob(got["added.txt"].digest) == b"new\n"
        readme = sb.read_file("README.md")
        assert got["README.md"].kind == "modified" and got["README.md"].size == len(readme)
        assert got["README.md"].digest == hashlib.sha256(readme).hexdigest()
        assert got["pyproject.toml"].kind == "deleted"
        assert got["tests/test_mathkit.py"].kind == "mode"
        assert got["tests/test_mathkit.py"].mode == 0o755
        assert got["readme-link"].kind == "symlink"
        assert got["readme-link"].link_target == "README.md"
        assert got["newdir"].kind == "added"
        assert all(got[p].kind == "deleted" for p in got if p.startswith("src/mathkit"))

    def test_diff_relative_to_previous_snapshot(self, make_sandbox: OpenSandbox) -> None:
        sb = make_sandbox()
        first = sb.snapshot()
        sb.exec("echo 1 > a.txt")
        second = sb.snapshot()
        sb.exec("echo 2 >> a.txt; echo b > b.txt; rm a.txt; echo 3 > a.txt")
        assert [(c.path, c.kind) for c in sb.diff(second)] == [
            ("a.txt", "modified"),
            ("b.txt", "added"),
        ]
        assert [(c.path, c.kind) for c in sb.diff(first)] == [
            ("a.txt", "added"),
            ("b.txt", "added"),
        ]
        third = sb.snapshot()
        assert sb.diff(third) == []
        sb.exec("rm b.txt")
        assert [(c.path, c.kind) for c in sb.diff(third)] == [("b.txt", "deleted")]
        assert [(c.path, c.kind) for c in sb.diff(first)] == [("a.txt", "added")]

    def test_rewrite_with_same_content_is_not_a_change(self, make_sandbox: OpenSandbox) -> None:
        sb = make_sandbox()
        mark = sb.snapshot()
        sb.exec("cp README.md /tmp/r && cat /tmp/r > README.md && touch pyproject.toml")
        assert sb.diff(mark) == []

    def test_recreated_directory_hides_template_files(self, make_sandbox: OpenSandbox) -> None:
        sb = make_sandbox()
        mark = sb.snapshot()
        sb.exec("rm -rf tests && mkdir tests && echo x > tests/fresh.py")
        assert [(c.path, c.kind) for c in sb.diff(mark)] == [
            ("tests/__init__.py", "deleted"),
            ("tests/fresh.py", "added"),
            ("tests/test_mathkit.py", "deleted"),
        ]

    def test_diff_file_over_cap_recorded_by_digest(
        self, make_sandbox: OpenSandbox, blobs: SqlEventStore
    ) -> None:
        sb = make_sandbox(limits=Limits(blob_cap_bytes=1000))
        mark = sb.snapshot()
        sb.exec("head -c 5000 /dev/zero > big; echo small > small")
        got = by_path(sb.diff(mark))
        assert got["big"].size == 5000 and not got["big"].stored
        assert got["big"].digest == hashlib.sha256(bytes(5000)).hexdigest()
        assert not blobs.has_blob(got["big"].digest)
        assert got["small"].stored

    # -- templates and lifecycle ----------------------------------------------------------

    def test_template_digest_recorded_and_mismatch_refused(
        self, make_sandbox: OpenSandbox, template_copy: object
    ) -> None:
        copy = template_copy("notes")  # type: ignore[operator]
        sb = make_sandbox(str(copy))
        digest = sb.template_digest
        assert digest == load_template(str(copy)).digest
        make_sandbox(str(copy), expected_digest=digest).close()
        (copy / "todo.md").write_text("changed\n")
        load_template(str(copy), refresh=True)
        with pytest.raises(TemplateError, match="notes"):
            make_sandbox(str(copy), expected_digest=digest)

    def test_empty_template(self, make_sandbox: OpenSandbox) -> None:
        sb = make_sandbox("empty")
        assert sb.exec("ls -A").stdout == b""

    def test_close_frees_everything(self, make_sandbox: OpenSandbox) -> None:
        sb = make_sandbox()
        sb.exec("echo x > f")
        sb.close()
        self.assert_freed(sb)
        sb.close()  # idempotent
        with pytest.raises(SandboxUnavailable):
            sb.exec("true")
