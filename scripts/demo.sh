#!/usr/bin/env bash
# Sets everything up and runs the main job on the embedded default (SQLite + local sandbox +
# the scripted scenarios), leaving the store and the exports in ./out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out
export ISE_ES_DB="sqlite:///$PWD/out/demo.db"
.venv/bin/ise-es db upgrade
.venv/bin/ise-es demo
