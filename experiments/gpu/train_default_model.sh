#!/usr/bin/env bash
# The default model's recipe sized for one H200-class GPU (about 10 minutes), offline.
#
#   bash experiments/gpu/train_default_model.sh                  # writes $OUT (default runs/gpu-export)
#   OUT=/somewhere SIZE=gpu WHEELS=/path/to/wheels bash experiments/gpu/train_default_model.sh
#   ALLOW_CPU=1 SIZE=tiny bash experiments/gpu/train_default_model.sh   # try it on a CPU (seconds)
#
# Runs python -m experiments.default_model.train --size $SIZE (configs/recipe.py) on the panoramas of
# ../shared/data/train_hdr (or the procedural scenes when that folder is absent) with the DoRF
# CRFs when present, and exports the weights to $OUT/model: at most 6 files of at most 16 MiB
# (.npz shards + manifest.json), plus $OUT/stages.json (steps, images, wall time per stage) and
# $OUT/train.log (progress lines: images/s per stage, evaluations; the full log is $WORKDIR.log). Nothing is downloaded: the machine must already have
# JAX (>= 0.10, < 0.12, GPU build); the other packages come from the wheel folder $WHEELS,
# prepared as described at the top of experiments/gpu/benchmark.sh plus
#   pip download -d wheels --python-version 3.12 --only-binary=:all: ... grain tensorflow-datasets array_record importlib_resources
# The run resumes from runs/gpu-train if it is started again.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"  # ROOT (the working folder from here on), PY
SIZE="${SIZE:-gpu}"
OUT="${OUT:-$ROOT/runs/gpu-export}"
WORKDIR="${WORKDIR:-$ROOT/runs/gpu-train}"
LIMIT_S="${LIMIT_S:-780}"  # stop (and still export what is there) before a 15-minute lease ends

echo "== hdrjax default-model training ($SIZE) in $ROOT with $PY"
PACKAGES=training  # what offline_env.sh makes sure of: the benchmark's packages + the data pipeline's
# shellcheck source=offline_env.sh
. "$ROOT/experiments/gpu/offline_env.sh"

ARGS=(--size "$SIZE" --workdir "$WORKDIR")
[ -d ../shared/data/train_hdr ] && ARGS+=(--hdr-folder ../shared/data/train_hdr)
[ -f ../shared/data/crf/dorf_201.npz ] && ARGS+=(--crf dorf:../shared/data/crf/dorf_201.npz)
mkdir -p "$OUT" "$(dirname "$WORKDIR")"
status=0
# SIGTERM at the limit: the stage in flight saves a checkpoint; a rerun continues from it.
timeout --signal=TERM --kill-after=30 "$LIMIT_S" "$PY" -m experiments.default_model.train "${ARGS[@]}" \
    --export "$OUT/model" > "$WORKDIR.log" 2>&1 || status=$?
cp "$WORKDIR/stages.json" "$OUT/stages.json" 2>/dev/null || true
# Progress lines only (images/s, evaluations): $OUT holds at most 8 files (6 of the model).
grep -v -E "^(WARNING|W[0-9]{4})" "$WORKDIR.log" | grep -E "img/s|===|eval at|compiled|exported|error|Error" \
    > "$OUT/train.log" || true
tail -n 25 "$OUT/train.log"
exit "$status"
