#!/usr/bin/env bash
# Sets everything up and runs the whole test suite: lint, types, generated files, pytest on
# SQLite and PostgreSQL with every sandbox backend.
set -euo pipefail
cd "$(dirname "$0")/.."
ISE_ES_EXTRAS=dev,diversity bash scripts/setup.sh
bash scripts/services.sh

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy (strict)"
.venv/bin/mypy
echo "== pytest"
.venv/bin/pytest "$@"
