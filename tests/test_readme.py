"""The README stands alone in a clone: its links resolve inside the repository, the event model it
points to is complete, the licence is declared."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from ise_es.events import EVENT_TYPES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
TOP_COMMANDS = (
    "bash scripts/demo.sh    # installs everything, runs the main job on SQLite + local sandbox"
    " + scripted scenarios\n"
    "bash scripts/test.sh    # installs everything, starts PostgreSQL and dockerd, runs the whole"
    " test suite\n"
)


def _links(markdown: str) -> list[str]:
    targets = re.findall(r"\]\(([^)\s]+)\)", markdown)
    targets += re.findall(r"`(\.\./[^`]+|docs/[^`]+\.md)`", markdown)
    return [t for t in targets if not re.match(r"[a-z]+://|#|mailto:", t)]


def test_readme_and_docs_link_only_to_files_in_the_repository() -> None:
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in _links(doc.read_text()):
            path = (doc.parent / target.split("#", 1)[0]).resolve()
            assert path.is_relative_to(ROOT), f"{doc.name} points outside the clone: {target}"
            assert path.exists(), f"{doc.name} links to a missing file: {target}"
    assert "docs/architecture.md" in README


def test_the_two_top_commands_stay_as_they_are() -> None:
    first_block = README.split("```\n", 2)[1]
    assert first_block == TOP_COMMANDS


def test_recording_section_says_db_upgrade_comes_first() -> None:
    recording = README.split("## Recording", 1)[1].split("\n## ", 1)[0]
    assert "ise-es db upgrade" in recording
    assert recording.index("ise-es db upgrade") < recording.index("ise-es record")


def test_architecture_doc_names_every_event_type() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    missing = sorted(tag for tag in EVENT_TYPES if f"`{tag}`" not in doc)
    assert not missing, f"docs/architecture.md does not describe event types {missing}"


def test_license_is_mit_and_declared() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 the ise-es authors" in text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
