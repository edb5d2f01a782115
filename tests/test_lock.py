"""The dependency locks agree with pyproject.toml, pin everything with hashes, and stay CPU-only.

scripts/setup.sh installs only from requirements/lock-*.txt, so a requirement added to
pyproject.toml without regenerating the lock would silently be missing (or the wrong version) on
every fresh machine. These tests catch that in the normal pytest run.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
REQS = ROOT / "requirements"
FIX = "run bash scripts/lock.sh (and commit requirements/)"
# lock file stem -> the extras it covers
LOCKS = {"lock-dev": ("dev",), "lock-dev-diversity": ("dev", "diversity")}
FULL = "lock-dev-diversity"


@dataclass
class Pin:
    version: str
    hashes: set[str] = field(default_factory=set)


@dataclass
class Lock:
    pins: dict[str, Pin]
    options: list[str]
    problems: list[str]


def read_lock(path: Path) -> Lock:
    """Parse a pip requirements file as uv writes it (continuation lines, `# via` comments)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    pins: dict[str, Pin] = {}
    options: list[str] = []
    problems: list[str] = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("--"):
            options.append(line)
            continue
        spec, *hashes = re.split(r"\s+--hash=", line)
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", spec.strip())
        if not m:
            problems.append(f"{path.name}: not pinned with ==: {spec.strip()!r}")
            continue
        name = canonicalize_name(m.group(1))
        if not hashes or not all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes):
            problems.append(f"{path.name}: {name} has no sha256 hash")
        pins[name] = Pin(m.group(2), set(hashes))
    return Lock(pins, options, problems)


def roots(extras: tuple[str, ...]) -> list[Requirement]:
    """Every requirement a lock must satisfy: base, the extras, the install tools."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lines = list(project["project"]["dependencies"])
    for extra in extras:
        lines += project["project"]["optional-dependencies"][extra]
    lines += project["build-system"]["requires"]
    for raw in (REQS / "install-tools.in").read_text().splitlines():
        if raw.split("#", 1)[0].strip():
            lines.append(raw.split("#", 1)[0].strip())
    return [Requirement(r) for r in lines]


def admits(req: Requirement, version: str) -> bool:
    return req.specifier.contains(Version(version), prereleases=True)


def unsatisfied(req: Requirement, lock: Lock) -> str | None:
    name = canonicalize_name(req.name)
    pin = lock.pins.get(name)
    if pin is None:
        return f"{req} is not in the lock"
    if not admits(req, pin.version):
        return f"{req} but the lock has {name}=={pin.version}"
    return None


def installed_requires(name: str, pin: Pin, extras: set[str]) -> list[Requirement] | None:
    """Requirements of the installed `name` (with `extras`), if it is the locked version."""
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    if Version(dist.version) != Version(pin.version):
        return None
    out = []
    for line in dist.requires or []:
        req = Requirement(line)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras | {""}):
            out.append(req)
    return out


@pytest.fixture(scope="module", params=sorted(LOCKS))
def lock(request: pytest.FixtureRequest) -> tuple[str, Lock]:
    stem: str = request.param
    path = REQS / f"{stem}.txt"
    assert path.exists(), f"requirements/{stem}.txt is missing: {FIX}"
    return stem, read_lock(path)


def test_every_locked_line_is_pinned_with_a_hash(lock: tuple[str, Lock]) -> None:
    stem, parsed = lock
    assert parsed.pins, f"{stem}.txt pins nothing: {FIX}"
    assert not parsed.problems, f"{parsed.problems}: {FIX}"


def test_lock_satisfies_every_requirement_of_pyproject(lock: tuple[str, Lock]) -> None:
    stem, parsed = lock
    problems = [p for r in roots(LOCKS[stem]) if (p := unsatisfied(r, parsed))]
    assert not problems, f"pyproject.toml and requirements/{stem}.txt disagree: {problems}: {FIX}"


def test_lock_is_closed_and_has_nothing_stale(lock: tuple[str, Lock]) -> None:
    """Walk the installed metadata from pyproject's requirements through the locked versions.

    Every dependency met on the way (extras included, e.g. eventsourcing[postgres] ->
    psycopg_pool) must be locked, and every locked package must be met. Needs the venv to hold
    the locked versions (setup.sh installs them); otherwise it cannot know the graph and skips.
    """
    stem, parsed = lock
    seen: set[str] = set()
    todo: list[Requirement] = roots(LOCKS[stem])
    problems: list[str] = []
    while todo:
        req = todo.pop()
        if (p := unsatisfied(req, parsed)) is not None:
            problems.append(p)
            continue
        name = canonicalize_name(req.name)
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        requires = installed_requires(name, parsed.pins[name], set(req.extras))
        if requires is None:
            pytest.skip(f"{name}=={parsed.pins[name].version} is not installed here")
        todo += requires
    assert not problems, f"requirements/{stem}.txt misses dependencies: {problems}: {FIX}"
    reached = {k.split("[", 1)[0] for k in seen}
    stale = sorted(set(parsed.pins) - reached)
    assert not stale, f"requirements/{stem}.txt locks what nothing requires: {stale}: {FIX}"


def test_dev_lock_is_the_full_lock_restricted() -> None:
    """One version per package across both locks: a demo venv and a test venv never differ."""
    full = read_lock(REQS / f"{FULL}.txt").pins
    dev = read_lock(REQS / "lock-dev.txt").pins
    differ = sorted(n for n, pin in dev.items() if full.get(n) != pin)
    assert not differ, f"lock-dev.txt and {FULL}.txt differ on {differ}: {FIX}"


def test_torch_is_the_cpu_build_on_this_disk_and_no_cuda_package_is_locked() -> None:
    full = read_lock(REQS / f"{FULL}.txt")
    dev = read_lock(REQS / "lock-dev.txt")
    cuda = sorted(
        n for n in {*full.pins, *dev.pins} if n.startswith("nvidia-") or n in {"triton", "cuda"}
    )
    assert not cuda, f"CUDA packages locked: {cuda}: {FIX}"
    assert "torch" not in dev.pins, "the default (demo) install must not need torch"
    pinned = next(
        Requirement(line)
        for line in (REQS / "torch-cpu.txt").read_text().splitlines()
        if line.startswith("torch")
    )
    torch = full.pins["torch"]
    assert Version(torch.version).local == "cpu" and admits(pinned, torch.version), (
        f"torch=={torch.version} is not requirements/torch-cpu.txt's {pinned}: {FIX}"
    )
    links = [o.split(None, 1)[1] for o in full.options if o.startswith("--find-links")]
    files = [f for d in links for f in Path(d).glob(f"torch-{torch.version}-*.whl")]
    if not files:
        pytest.skip(f"no torch-{torch.version} wheel in {links} on this machine")
    digests = {"sha256:" + hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    assert torch.hashes <= digests, f"torch's hash is not the local file's ({files}): {FIX}"


def test_read_lock_reports_unhashed_and_unpinned_lines(tmp_path: Path) -> None:
    path = tmp_path / "lock.txt"
    path.write_text(
        "--find-links /x\n"
        "good==1.0 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via me\n"
        "nohash==2.0\n"
        "ranged>=3\n"
    )
    parsed = read_lock(path)
    assert parsed.options == ["--find-links /x"]
    assert parsed.pins["good"] == Pin("1.0", {"sha256:" + "a" * 64})
    assert parsed.problems == [
        "lock.txt: nohash has no sha256 hash",
        "lock.txt: not pinned with ==: 'ranged>=3'",
    ]
