"""Normalizers: rewrite the parts of an output that legitimately change between two runs of the
same command (clock readings, durations, process ids, random temp names, generated ids, terminal
escapes, host names) into fixed tokens, so that a replay can tell "equal up to noise" from "not
equal".

A normalizer is only consulted when the recorded and replayed values differ byte for byte, and
both sides go through the same chain, so a normalizer can never make two identical outputs
different; what it can do is hide a real difference that happens to look like noise (a changed
date inside a report). That is why each one is switchable and why a verdict of `equivalent`
names the normalizers that fired and the lines where they did.

Patterns stay within one line (`[ \\t]`, never `\\s`), so normalizing never changes the line
structure: line N of a normalized text is line N of the original, which is how `where` is
computed.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_NORMALIZERS",
    "NORMALIZER_NAMES",
    "Normalized",
    "Normalizer",
    "NormalizerSet",
    "select_normalizers",
]

Replacement = str | Callable[[re.Match[str]], str]


@dataclass(frozen=True)
class Normalizer:
    """One kind of noise: named patterns, each replaced by a token."""

    name: str
    description: str
    rules: tuple[tuple[re.Pattern[str], Replacement], ...]

    def apply(self, text: str) -> tuple[str, list[int]]:
        """The normalized text and the 0-based line numbers where a rule matched."""
        lines: list[int] = []
        for pattern, replacement in self.rules:

            def sub(
                m: re.Match[str], source: str = text, replacement: Replacement = replacement
            ) -> str:
                # Line numbers survive every rule because no rule adds or removes a newline.
                lines.append(source.count("\n", 0, m.start()))
                if isinstance(replacement, str):
                    return m.expand(replacement)
                return replacement(m)

            text = pattern.sub(sub, text)
        return text, sorted(set(lines))


_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_ZONE = r"(?:Z|[+-]\d{2}:?\d{2}|UTC|GMT)"

_ANSI = Normalizer(
    "ansi",
    "terminal escape sequences (colours, cursor moves, OSC titles)",
    (
        (re.compile(r"\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\)"), ""),
        (re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]"), ""),
        (re.compile(r"\x1b[@-Z\\-_]"), ""),
    ),
)

_TEMP_PATHS = Normalizer(
    "temp-paths",
    "random temporary file and directory names (mktemp, Python tempfile, pytest)",
    (
        (
            re.compile(r"(?<![\w.])(/(?:var/)?tmp|/dev/shm)/tmp[._-]?[A-Za-z0-9_]{5,}"),
            r"\1/<TMP>",
        ),
        (re.compile(r"/pytest-of-[\w.-]+/pytest-\d+"), "/<PYTEST-TMP>"),
    ),
)

_TIMESTAMPS = Normalizer(
    "timestamps",
    "dates and times: ISO 8601, date(1) and RFC 2822 formats, ls -l times, epoch seconds",
    (
        (
            re.compile(
                r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:[ \t]?"
                + _ZONE
                + r")?"
            ),
            "<TIMESTAMP>",
        ),
        (
            re.compile(
                rf"\b{_DAY},?[ \t]+{_MONTH}[ \t]+\d{{1,2}}[ \t]+\d{{2}}:\d{{2}}:\d{{2}}"
                r"(?:[ \t]+[A-Z]{2,5})?[ \t]+\d{4}\b"
            ),
            "<TIMESTAMP>",
        ),
        (
            re.compile(
                rf"\b{_DAY},[ \t]+\d{{1,2}}[ \t]+{_MONTH}[ \t]+\d{{4}}[ \t]+\d{{2}}:\d{{2}}:\d{{2}}"
                r"(?:[ \t]+(?:[+-]\d{4}|[A-Z]{2,5}))?"
            ),
            "<TIMESTAMP>",
        ),
        (re.compile(rf"\b{_MONTH}[ \t]+\d{{1,2}}[ \t]+\d{{2}}:\d{{2}}\b"), "<TIMESTAMP>"),
        (re.compile(r"\b\d{4}-\d{2}-\d{2}\b"), "<DATE>"),
        (re.compile(r"\b\d{2}:\d{2}:\d{2}(?:\.\d+)?\b"), "<TIME>"),
        # Unix seconds from 2020-09 to 2033-05: ten digits starting 16..19.
        (re.compile(r"(?<![\d.])1[6-9]\d{8}(?:\.\d+)?(?![\d.])"), "<EPOCH>"),
    ),
)

_DURATIONS = Normalizer(
    "durations",
    "elapsed times: 0.013s, 12 ms, 1.5 seconds, 0m0.004s",
    (
        (re.compile(r"\b\d+m\d+(?:\.\d+)?s\b"), "<DURATION>"),
        (
            re.compile(
                r"\b\d+\.\d+[ \t]?(?:ns|us|µs|ms|s|sec|secs|seconds?|m|min|mins|minutes?|h)\b"
            ),
            "<DURATION>",
        ),
        (
            re.compile(r"\b\d+[ \t]?(?:ns|us|µs|ms|msec|secs?|seconds?)\b"),
            "<DURATION>",
        ),
    ),
)

_IDS = Normalizer(
    "ids",
    "UUIDs and hexadecimal ids of 16 to 40 digits (container ids, short digests, git hashes); "
    "64-digit sha256 values are content digests and are left alone",
    (
        (
            re.compile(
                r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
            ),
            "<UUID>",
        ),
        (re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{16,40}\b"), "<HEX>"),
        (re.compile(r"\b(?=[0-9A-F]*[A-F])(?=[0-9A-F]*\d)[0-9A-F]{16,40}\b"), "<HEX>"),
    ),
)

_PIDS = Normalizer(
    "pids",
    "process ids where they are labelled: 'pid 123', 'PID: 123', '\"pid\": 123', "
    "job lines '[1] 123', /proc/123/",
    (
        (
            re.compile(r"(?i)(\bpid\b[\"']?[ \t]*[:=#]?[ \t]*)\d+"),
            lambda m: m.group(1) + "<PID>",
        ),
        (re.compile(r"(?m)^(\[\d+\][+-]?[ \t]+)\d+\b"), r"\1<PID>"),
        (re.compile(r"/proc/\d+/"), "/proc/<PID>/"),
    ),
)


def _hostnames(extra: Iterable[str]) -> Normalizer:
    names = sorted({n for n in extra if n and n != "localhost"}, key=len, reverse=True)
    rules: list[tuple[re.Pattern[str], Replacement]] = [
        (re.compile(r"\b[a-z0-9-]+\.(?:local|localdomain|lan|internal)\b"), "<HOST>"),
        (re.compile(r"\bip-\d{1,3}-\d{1,3}-\d{1,3}-\d{1,3}\b"), "<HOST>"),
    ]
    if names:
        alternatives = "|".join(re.escape(n) for n in names)
        rules.insert(0, (re.compile(rf"(?<![\w.-])(?:{alternatives})(?![\w-])"), "<HOST>"))
    return Normalizer(
        "hostnames",
        "this machine's host name, *.local/*.internal names and cloud ip-a-b-c-d names",
        tuple(rules),
    )


DEFAULT_NORMALIZERS: tuple[str, ...] = (
    "ansi",
    "temp-paths",
    "timestamps",
    "durations",
    "ids",
    "pids",
    "hostnames",
)
"""Every normalizer, in the order they run: escapes first (they split tokens), temp names before
ids (a mktemp suffix can look like hex), timestamps before durations (12:00:01 is not 12 m)."""

NORMALIZER_NAMES = frozenset(DEFAULT_NORMALIZERS)


def _build(name: str, hostnames: Iterable[str]) -> Normalizer:
    fixed = {
        "ansi": _ANSI,
        "temp-paths": _TEMP_PATHS,
        "timestamps": _TIMESTAMPS,
        "durations": _DURATIONS,
        "ids": _IDS,
        "pids": _PIDS,
    }
    return fixed[name] if name in fixed else _hostnames(hostnames)


def select_normalizers(enable: Sequence[str] = (), disable: Sequence[str] = ()) -> list[str]:
    """The enabled names: all by default, minus `disable` (`all` for every one), plus `enable`.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    for name in [*enable, *disable]:
        if name != "all" and name not in NORMALIZER_NAMES:
            raise ValueError(
                f"unknown normalizer {name!r} (known: all, {', '.join(DEFAULT_NORMALIZERS)})"
            )
    off = set(NORMALIZER_NAMES if "all" in disable else disable)
    on = set(NORMALIZER_NAMES if "all" in enable else enable)
    return [n for n in DEFAULT_NORMALIZERS if n in on or n not in off]


@dataclass(frozen=True)
class Normalized:
    text: str
    fired: dict[str, list[int]] = field(default_factory=dict)
    """Normalizer name -> 0-based lines where it replaced something."""


class NormalizerSet:
    """The enabled normalizers, applied in their fixed order."""

    def __init__(self, names: Sequence[str], *, hostnames: Iterable[str] | None = None) -> None:
        hosts = list(hostnames) if hostnames is not None else [socket.gethostname()]
        self.names = [n for n in DEFAULT_NORMALIZERS if n in set(names)]
        self._chain = [_build(n, hosts) for n in self.names]

    def __bool__(self) -> bool:
        return bool(self._chain)

    def apply(self, text: str) -> Normalized:
        fired: dict[str, list[int]] = {}
        for normalizer in self._chain:
            text, lines = normalizer.apply(text)
            if lines:
                fired[normalizer.name] = lines
        return Normalized(text, fired)
