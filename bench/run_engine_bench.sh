#!/usr/bin/env bash
# The engine benchmark of docs/performance.md: cleave vs PyTorch eager on the tiny
# and small presets. Usage: bench/run_engine_bench.sh [extra cleave_engine_bench flags]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
BUILD_DIR=${CLEAVE_BUILD_DIR:-build}
CLI="$BUILD_DIR/tools/cleave/cleave"
mkdir -p models
for preset in tiny small; do
  [[ -f models/bench-$preset/config.json ]] || "$CLI" make-model --preset $preset --out models/bench-$preset --seed 1
done
export CLEAVE_SOURCE_DIR=$PWD
echo "commit $(git rev-parse --short HEAD) on $(nproc) cores, $(date -u +%F)"
for preset in tiny small; do
  "$BUILD_DIR/bench/cleave_engine_bench" --model models/bench-$preset "$@"
done
