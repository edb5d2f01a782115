"""Sandbox speed: start/exec/close against the plain-subprocess floor, template-size
independence, and diff cost. One command, figures and ratios measured in the same run:

    .venv/bin/python benchmarks/sandbox_bench.py [--skip-docker] [--big-mb 1024]

Targets (issue 3): start flat in template size (1 GB within 1.5x of 10 MB); diff() on a
10,000-file workspace with 10 changed files <= 50 ms; exec overhead per call <= 15 ms (local)
and <= 150 ms (docker) above `subprocess.run(["true"])`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ise_es.sandbox import Sandbox, Template, load_template, open_sandbox

MB = 1 << 20


def median_ms(fn: Callable[[], object], n: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def du_bytes(path: str) -> int:
    # -x: stay on this filesystem, i.e. leave out the overlay mounted inside a sandbox's state
    out = subprocess.run(["du", "-sbx", path], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def make_template(root: Path, total_mb: int, files: int) -> Path:
    root.mkdir(parents=True)
    block = os.urandom(MB)
    per_file = total_mb // files
    for i in range(files):
        with open(root / f"data-{i:04d}.bin", "wb") as f:
            for j in range(per_file):
                f.write(block[j % 7 :] + block[: j % 7])  # distinct blocks, cheap to make
    (root / "README.md").write_text(f"{total_mb} MB template\n")
    return root


def make_many_files(root: Path, n: int) -> Path:
    for i in range(n):
        d = root / f"d{i // 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.txt").write_text(f"file {i}\n")
    return root


def row(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<58} {value:>14}  {note}")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def bench_start(backend: str, opts: dict[str, Any], floor: float, n: int) -> float:
    def cycle() -> None:
        with open_sandbox(backend, "pyproject", blobs=None, **opts) as sb:
            sb.exec(["true"])

    ms = median_ms(cycle, n)
    row(f"{backend}: start + `true` + close (median of {n})", f"{ms:.1f} ms", f"x{ms / floor:.0f}")
    return ms


def bench_exec(backend: str, opts: dict[str, Any], floor: float, n: int, target: float) -> None:
    with open_sandbox(backend, "pyproject", blobs=None, **opts) as sb:
        ms = median_ms(lambda: sb.exec(["true"]), n, warmup=2)
    over = ms - floor
    row(
        f"{backend}: exec `true` (median of {n})",
        f"{ms:.1f} ms",
        f"overhead {over:.1f} ms, target <= {target:.0f}: {verdict(over <= target)}",
    )


def bench_template_size(backend: str, opts: dict[str, Any], small: Path, big: Path, n: int) -> None:
    results = {}
    for label, path in (("10 MB", small), (f"{du_bytes(str(big)) // MB} MB", big)):
        t = time.perf_counter()
        tpl = load_template(str(path))
        first_digest = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        open_sandbox(backend, tpl, blobs=None, **opts).close()  # docker: builds the layer once
        first_open = (time.perf_counter() - t) * 1000
        disks: list[int] = []

        def cycle(tpl: Template = tpl, disks: list[int] = disks) -> None:
            sb = open_sandbox(backend, tpl, blobs=None, **opts)
            sb.exec(["true"])
            disks.append(extra_disk(sb))
            sb.close()

        ms = median_ms(cycle, n, warmup=0)
        results[label] = ms
        row(
            f"{backend}: {label} template, start + `true` + close",
            f"{ms:.1f} ms",
            f"extra disk {max(disks) / 1024:.0f} KiB; once per process: digest "
            f"{first_digest:.0f} ms, first open {first_open:.0f} ms",
        )
    (a, b) = results.values()
    row(
        f"{backend}: big / small template start",
        f"x{b / a:.2f}",
        f"target <= 1.5: {verdict(b / a <= 1.5)}",
    )


def extra_disk(sb: Sandbox) -> int:
    state = getattr(sb, "state_dir", None)
    if state is not None:
        return du_bytes(state)
    # docker: the container's writable layer
    container: Any = getattr(sb, "_container", None)
    assert container is not None
    return du_bytes(container.attrs["GraphDriver"]["Data"]["UpperDir"])


def bench_diff(backend: str, opts: dict[str, Any], many: Path) -> None:
    tpl = load_template(str(many))
    with open_sandbox(backend, tpl, blobs=None, **opts) as sb:
        times = []
        for rnd in range(7):
            mark = sb.snapshot()
            paths = [f"d{i // 100:03d}/f{i:05d}.txt" for i in range(rnd, 10_000, 1000)]
            sb.exec(f"for p in {' '.join(paths)}; do echo r{rnd} >> $p; done")
            t = time.perf_counter()
            changes = sb.diff(mark)
            times.append((time.perf_counter() - t) * 1000)
            assert len(changes) == 10, changes
        ms = statistics.median(times)

        def full_walk() -> None:
            for _dirpath, _dirs, files in os.walk(many):
                for f in files:
                    os.lstat(os.path.join(_dirpath, f))

        walk = median_ms(full_walk, 5)
    row(
        f"{backend}: diff(), 10,000 files, 10 changed (median of 7)",
        f"{ms:.1f} ms",
        f"target <= 50: {verdict(ms <= 50)}; a stat-only walk of the tree: {walk:.1f} ms",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-docker", action="store_true")
    ap.add_argument("--big-mb", type=int, default=1024)
    args = ap.parse_args()

    backends: list[tuple[str, dict[str, Any]]] = [("local", {})]
    if not args.skip_docker:
        from ise_es.sandbox.dockerimage import build_base_image, ensure_dockerd

        client = ensure_dockerd()
        build_base_image(client)
        backends.append(("docker", {"client": client}))

    work = Path(tempfile.mkdtemp(prefix="ise-es-bench-", dir="/var/tmp"))
    try:
        print("building templates ...", flush=True)
        small = make_template(work / "t10", 10, 10)
        big = make_template(work / "tbig", args.big_mb, 16)
        many = make_many_files(work / "many", 10_000)

        floor = median_ms(lambda: subprocess.run(["true"]), 50, warmup=3)
        load = os.getloadavg()[0]
        print(f"\nsandbox benchmark (medians; {os.cpu_count()} cores; load average {load:.2f})")
        if load > 1.5:
            print("  (the machine is busy: per-call figures are inflated; rerun when idle)")
        row('floor: subprocess.run(["true"]) (median of 50)', f"{floor:.2f} ms")
        for backend, opts in backends:
            n = 15 if backend == "local" else 5
            bench_start(backend, opts, floor, n)
            bench_exec(
                backend,
                opts,
                floor,
                30 if backend == "local" else 15,
                15 if backend == "local" else 150,
            )
            bench_template_size(backend, opts, small, big, 7 if backend == "local" else 3)
            bench_diff(backend, opts, many)
    finally:
        if not args.skip_docker:
            for path in (work / "t10", work / "tbig", work / "many"):
                _remove_template_image(backends[-1][1]["client"], path)
        shutil.rmtree(work, ignore_errors=True)


def _remove_template_image(client: Any, path: Path) -> None:
    """The bench's template images are throwaway (the 1 GB one especially)."""
    if not path.exists():
        return
    tag = f"ise-es-ws:{load_template(str(path)).digest.removeprefix('sha256:')[:32]}"
    with contextlib.suppress(Exception):
        client.images.remove(tag, force=True)


if __name__ == "__main__":
    main()
