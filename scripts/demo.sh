#!/usr/bin/env bash
# Sets everything up and runs the main job on the embedded default: records the shipped
# scripted scenarios on SQLite with the local (bubblewrap) sandbox, every tool call executed for
# real, then exports the completed trajectories as SFT JSONL. Everything lands in ./out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out
export ISE_ES_DB="sqlite:///$PWD/out/demo.db"
ise=.venv/bin/ise-es
$ise db upgrade
$ise record --scenario shipped
$ise sessions list
$ise verify
echo
echo "Replaying every recorded session in fresh sandboxes:"
$ise replay --all
if $ise project sft-jsonl --help >/dev/null 2>&1; then
    $ise project sft-jsonl -o out/sft.jsonl
fi
first=$($ise sessions list --json | python3 -c "import json,sys; print(json.loads(sys.stdin.readline())[\"session_id\"])")
echo
echo "One recorded trajectory (ise-es sessions show $first):"
$ise sessions show "$first"
