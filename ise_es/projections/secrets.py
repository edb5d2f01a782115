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


# (kind, pattern, group): `group` is the part that is the secret (0 = the whole match); for a
# password in a URL only the password is the secret, the user and host stay readable.
SECRET_PATTERNS: list[tuple[str, re.Pattern[str], int]] = [
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
    ),
    (
        "github_token",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})"),
        0,
    ),
    ("openai_key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,}"), 0),
    ("aws_access_key_id", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"), 0),
    (
        "aws_secret_access_key",
        re.compile(
            r"(?i)aws_secret_access_key[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
        ),
        1,
    ),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), 0),
    (
        "slack_webhook",
        re.compile(r"https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]{16,}"),
        0,
    ),
    (
        "password_in_url",
        # scheme://user:password@host; placeholders such as $VAR, ${VAR}, <pass>, *** are not
        # secrets, so the password must start with a character none of them starts with.
        re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@'\"]+:([^\s@/$<{*'\"][^\s@/'\"]*)@"),
        1,
    ),
]


# Substrings every match of a pattern contains: `in` scans at memory speed, so the regexes run
# only on the rare texts that could match (audits scan every string of a corpus).
_TRIGGERS: dict[str, tuple[str, ...]] = {
    "private_key": ("PRIVATE KEY-----",),
    "github_token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    "openai_key": ("sk-",),
    "aws_access_key_id": ("AKIA", "ASIA", "ABIA", "ACCA"),
    "aws_secret_access_key": ("secret_access_key", "SECRET_ACCESS_KEY", "Secret_Access_Key"),
    "slack_token": ("xox",),
    "slack_webhook": ("hooks.slack.com",),
    "password_in_url": ("://",),
}


_ANY_TRIGGER = re.compile("|".join(re.escape(t) for ts in _TRIGGERS.values() for t in ts))


def find_secrets(text: str) -> Iterator[SecretHit]:
    """Every secret in `text`, by kind (overlapping hits of different kinds are all reported)."""
    if not text or _ANY_TRIGGER.search(text) is None:
        return
    for kind, pattern, group in SECRET_PATTERNS:
        if not any(trigger in text for trigger in _TRIGGERS[kind]):
            continue
        for match in pattern.finditer(text):
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
