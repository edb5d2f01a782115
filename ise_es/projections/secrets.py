"""Secret detection and redaction, shared by the audit (report) and the export (redact).

Patterns are deliberately specific (token prefixes and fixed shapes) so ordinary shell output
does not trip them: a false positive drops a trajectory under `--clean`, which costs data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

__all__ = ["SECRET_PATTERNS", "SecretHit", "find_secrets", "redact"]


class SecretHit(NamedTuple):
    kind: str
    start: int
    end: int


# (kind, pattern, group, word start): `group` is the part that is the secret (0 = the whole
# match); for a password in a URL only the password is the secret, the user and host stay
# readable. Every pattern begins with a literal, which lets the regex engine jump between
# occurrences of it at memory speed (a leading `\b` would make it try every position: audits
# scan every string of the corpus). "word start" replaces that `\b`: the match must not follow
# a letter, digit or underscore ("task-..." holds no OpenAI key).
SECRET_PATTERNS: list[tuple[str, re.Pattern[str], int, bool]] = [
    (
        "private_key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"
            # An unterminated key (a truncated output) runs to the end of its base64 body only,
            # so redacting inside a JSON string does not swallow the closing quote.
            r"(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|(?:[A-Za-z0-9+/=\s]|\\n)*)",
            re.DOTALL,
        ),
        0,
        False,
    ),
    ("github_token", re.compile(r"gh[pousr]_[A-Za-z0-9]{36,}"), 0, True),
    ("github_token", re.compile(r"github_pat_[A-Za-z0-9_]{40,}"), 0, True),
    ("openai_key", re.compile(r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,}"), 0, True),
    ("aws_access_key_id", re.compile(r"A(?:KIA|SIA|BIA|CCA)[0-9A-Z]{16}(?![0-9A-Za-z])"), 0, True),
    (
        "aws_secret_access_key",
        re.compile(
            r"(?i)aws_secret_access_key[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
        ),
        1,
        False,
    ),
    ("slack_token", re.compile(r"xox[abposr]-[A-Za-z0-9-]{10,}"), 0, True),
    (
        "slack_webhook",
        re.compile(r"https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]{16,}"),
        0,
        False,
    ),
    (
        "password_in_url",
        # scheme://user:password@host, found from its "://"; placeholders such as $VAR,
        # ${VAR}, <pass>, *** are not secrets, so the password must start with a character
        # none of them starts with.
        re.compile(r"://[^\s:/@'\"]+:([^\s@/$<{*'\"][^\s@/'\"]*)@"),
        1,
        False,
    ),
]


def _word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def find_secrets(text: str) -> Iterator[SecretHit]:
    """Every secret in `text`, by kind (overlapping hits of different kinds are all reported)."""
    if not text:
        return
    for kind, pattern, group, word_start in SECRET_PATTERNS:
        # The case-insensitive pattern has no literal to jump to: run it only where its key
        # name is (lower() and `in` both run at memory speed, a case-insensitive search not).
        if kind == "aws_secret_access_key" and "secret_access_key" not in text.lower():
            continue
        for match in pattern.finditer(text):
            start = match.start()
            if word_start and start > 0 and _word_char(text[start - 1]):
                continue
            yield SecretHit(kind, match.start(group), match.end(group))


def redact(text: str) -> str:
    """`text` with every secret replaced by `[REDACTED:<kind>]`.

    The replacement holds no quote or backslash, so redacting inside a JSON document (tool-call
    arguments) keeps it valid JSON.
    """
    if not text:
        return text
    hits = sorted(find_secrets(text), key=lambda h: (h.start, -h.end))
    if not hits:
        return text
    out: list[str] = []
    cursor = 0
    for kind, start, end in hits:
        if start < cursor:  # inside a secret already replaced
            continue
        out.append(text[cursor:start])
        out.append(f"[REDACTED:{kind}]")
        cursor = end
    out.append(text[cursor:])
    return "".join(out)
