#!/usr/bin/env bash
# Regenerates the dependency locks that scripts/setup.sh installs from:
#   requirements/lock-dev-diversity.txt   base + dev + diversity (the test install; CPU torch)
#   requirements/lock-dev.txt             base + dev (the default and demo install; no torch)
# Run it after any change to pyproject.toml's dependencies and commit both files:
#   bash scripts/lock.sh                 keep the current pins, add/drop what pyproject.toml changed
#   bash scripts/lock.sh --upgrade       move every package to the newest release the ranges admit
#   bash scripts/lock.sh -P msgspec      move one package (repeatable)
#
# Tool: uv's `pip compile`, pinned below, in its own small venv (.venv/lock-tools, so the
# project's site-packages hold exactly the lock). Why not pip-tools: pip-compile --generate-hashes takes hashes from
# PyPI's JSON API and matches them by file URL; the registry reached here serves those URLs
# relative, so pip-compile downloaded and hashed every wheel of every platform (7 min 49 s for
# one lock, measured). uv reads the hashes from the simple index (about 7 s) and produced the
# same 107 pins and the same 2,603 hashes. uv does not read pip's config, so the CPU torch's
# location is passed explicitly (--find-links) and written into the lock for pip to use.
#
# Consistency: the full lock is resolved first; the dev lock is then resolved with the full
# lock as a constraint, so every package they share has the same version and hashes
# (tests/test_lock.py checks that, and that both agree with pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
TORCH_WHEELS=/opt/wheels
tools=.venv/lock-tools
if [ ! -x "$tools/bin/uv" ] || [ "$("$tools/bin/uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
    python3 -m venv "$tools"
    "$tools/bin/pip" install -q "uv==$UV_VERSION"
fi
uv="$tools/bin/uv"

# The interpreter the venv is made from (setup.sh: python3 -m venv): markers and wheels resolve
# for it, and the CPU torch file exists for this Python only (cp311).
python=$(command -v python3)

compile() {
    local out=$1
    shift
    "$uv" pip compile --quiet --no-config --python "$python" \
        --generate-hashes --emit-find-links \
        --custom-compile-command "bash scripts/lock.sh" \
        -c requirements/torch-cpu.txt -o "$out" "$@"
}

compile requirements/lock-dev-diversity.txt --find-links "$TORCH_WHEELS" \
    --extra dev --extra diversity pyproject.toml requirements/install-tools.in "$@"
# (the full lock carries the --find-links line, so the dev resolution sees the same files)
compile requirements/lock-dev.txt --extra dev -c requirements/lock-dev-diversity.txt \
    pyproject.toml requirements/install-tools.in

# A CUDA torch or an nvidia-* package in a lock would cost every install several GB.
if grep -qiE '^(nvidia-|triton==)' requirements/lock-*.txt \
    || ! grep -q '^torch==.*+cpu ' requirements/lock-dev-diversity.txt; then
    echo "lock: a CUDA torch or nvidia-* package was resolved; check $TORCH_WHEELS" >&2
    exit 1
fi
for lock in requirements/lock-dev-diversity.txt requirements/lock-dev.txt; do
    echo "lock: $lock: $(grep -cE '^[a-z0-9]' "$lock") packages"
done
