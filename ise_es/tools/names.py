"""Deterministic, readable names for background process sessions ("amber-otter").

Replay must see the same names as the recording, so names come from a seeded generator that
the runner is given, never from the clock or os.urandom.
"""

from __future__ import annotations

import random

__all__ = ["SessionNamer"]


def _words(text: str) -> list[str]:
    return text.split()


_ADJECTIVES = _words(
    "amber brisk calm crisp dawn ember fern gentle golden hazel ivory jade keen lunar "
    "mellow misty nova opal quiet rapid rustic silver solar swift tidal vivid warm young "
    "zesty"
)


_NOUNS = _words(
    "badger brook canyon cedar comet delta falcon forest glade harbor heron island lagoon "
    "maple meadow otter pine prairie quartz raven reef river sparrow summit thistle "
    "willow"
)


class SessionNamer:
    """Callable returning a fresh adjective-noun name each time, unique within the namer."""

    def __init__(self, seed: int = 0) -> None:
        self._random = random.Random(seed)
        self._used: set[str] = set()

    def __call__(self) -> str:
        base = f"{self._random.choice(_ADJECTIVES)}-{self._random.choice(_NOUNS)}"
        name, n = base, 2
        while name in self._used:
            name, n = f"{base}-{n}", n + 1
        self._used.add(name)
        return name
