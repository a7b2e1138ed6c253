#!/usr/bin/env bash
# The main job: build, write the tiny checkpoint, and generate from it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
BUILD_DIR=${CLEAVE_BUILD_DIR:-build}
MODEL=${CLEAVE_DEMO_MODEL:-models/tiny}
if [[ ! -f "$MODEL/config.json" ]]; then
  "$BUILD_DIR/tools/cleave/cleave" make-model --preset tiny --out "$MODEL" --seed 1
fi
"$BUILD_DIR/tools/cleave/cleave" run --model "$MODEL" --prompt "${1:-The experts said}" \
  --max-tokens 48 --temperature 0.8 --top-p 0.95 --seed 7
