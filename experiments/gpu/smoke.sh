#!/usr/bin/env bash
# A few training steps of every stage on one accelerator and on all of them, offline:
# images/s, peak device memory and compile time (experiments/gpu/accelerator_smoke.py).
#
#   bash experiments/gpu/smoke.sh                          # production settings, float32
#   bash experiments/gpu/smoke.sh --dtype bfloat16         # mixed precision
#   ALLOW_CPU=1 bash experiments/gpu/smoke.sh --patch 32 --steps 2   # try it on a CPU
#
# Nothing is downloaded: the machine must already have JAX (>= 0.10, < 0.12, accelerator
# build); the other packages come from the wheel folder $WHEELS (default ./wheels), prepared as
# at the top of experiments/gpu/benchmark.sh plus
#   pip download -d wheels --python-version 3.12 --only-binary=:all: ... grain tensorflow-datasets array_record importlib_resources
# Writes experiments/results/accelerator-smoke-<backend>.json.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"  # ROOT (the working folder from here on), PY
LIMIT_S="${LIMIT_S:-480}"
echo "== hdrjax accelerator smoke in $ROOT with $PY"
PACKAGES=training  # the smoke run trains every stage: the benchmark's packages + the data pipeline's
# shellcheck source=offline_env.sh
. "$ROOT/experiments/gpu/offline_env.sh"
timeout --signal=TERM --kill-after=20 "$LIMIT_S" "$PY" -m experiments.gpu.accelerator_smoke "$@"
