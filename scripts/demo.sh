#!/usr/bin/env bash
# The main job: build, write the tiny checkpoint, start a local cluster (router, one prefill
# and one decode worker) and generate through it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
BUILD_DIR=${CLEAVE_BUILD_DIR:-build}
CLEAVE="$BUILD_DIR/tools/cleave/cleave"
if [[ ! -f models/tiny/config.json ]]; then
  "$CLEAVE" make-model --preset tiny --out models/tiny --seed 1
fi
exec "$CLEAVE" up --config deploy/local/1p1d.yaml -- \
  "$CLEAVE" generate --prompt "${1:-The experts said}" \
  --max-tokens 48 --temperature 0.8 --top-p 0.95 --seed 7
