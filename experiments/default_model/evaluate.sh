#!/usr/bin/env bash
# Every result file behind the README section "The default model", from the trained model.
#
#   bash experiments/default_model/evaluate.sh                      # the shipped model
#   CHECKPOINT=runs/gpu-export/model RUNS=runs/gpu-train bash experiments/default_model/evaluate.sh
#
# HELDOUT_ONLY=1 only links the held-out files into runs/default-model-heldout, keeps that folder
# and stops (for `python -m hdrjax.evaluate runs/default-model-heldout ...` on another checkpoint).
#
# Needs ../shared/data (the held-out HDR files and the DoRF curves). Writes, under
# experiments/results/ ($RESULTS):
#   default-model-eval/      python -m hdrjax.evaluate on the 12 held-out HDR files
#                            (summary.md/.csv, per_image.csv, protocol.json; --error-budget:
#                            bands.csv, speckle.csv, curves.csv, read by docs/training.md's
#                            tables, python -m experiments.default_model.error_budget)
#   default-model-eval-lin/  the same for Deq + Lin and the global-curve baselines on all 10
#                            test CRFs (the inverse-CRF RMSE against the mean-curve answer)
#   training-curves.json/.png  learning curves of each stage (from $RUNS/<stage>/metrics.jsonl)
#   held-out-examples.png    input, ours, ground truth and an exposure stack for 3 held-out images
# Protocol (hdrjax/evaluation/protocol.py): held-out DoRF CRFs x exposures -3..+3 stops, JPEG 90, the
# first and last RES² crops of each image at short side RES. CRFS and RES trade time for
# coverage (the defaults take about 25 minutes on a 2-core CPU).
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"  # ROOT (the working folder from here on), PY
CHECKPOINT="${CHECKPOINT:-default}"
RUNS="${RUNS:-runs/default}"
RESULTS="${RESULTS:-experiments/results}"
SHARED="${SHARED:-../shared/data}"
CRFS="${CRFS:-3}"
RES="${RES:-256}"
DORF="$SHARED/crf/dorf_201.npz"

# The held-out set: configs/recipe.TEST_NAMES from the panorama folder + the four real photos,
# linked into a folder under runs/ (relative, so the commands the results record name no folder
# of this machine).
HELDOUT="runs/default-model-heldout"
rm -rf "$HELDOUT" && mkdir -p "$HELDOUT"
trap 'rm -rf "$HELDOUT"' EXIT
"$PY" - "$HELDOUT" "$SHARED" <<'PYEOF'
import os, pathlib, sys
from hdrjax.configs import recipe
out, shared = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]).absolute()
files = [shared / "train_hdr" / n for n in recipe.TEST_NAMES] + sorted((shared / "real_hdr").glob("*.exr"))
for f in files:
    if not f.exists():
        sys.exit(f"held-out file {f} is missing")
    os.symlink(f, out / f.name)
print(f"held-out set: {len(files)} files")
PYEOF
if [ "${HELDOUT_ONLY:-0}" = 1 ]; then  # keep the folder for an evaluation of your own, and stop
    trap - EXIT
    echo "kept $HELDOUT"
    exit 0
fi

echo "== evaluate ($CHECKPOINT, $CRFS test CRFs, ${RES}²)"
"$PY" -m hdrjax.evaluate "$HELDOUT" --workdir "$RESULTS/default-model-eval" --checkpoint "$CHECKPOINT" \
    --crf "dorf:$DORF" --max-crfs "$CRFS" --resolution "$RES" --methods stages,baselines,true_crf --error-budget

echo "== the Linearization-Net on all of DoRF's test CRFs (cheap: no Hallucination-Net)"
"$PY" -m hdrjax.evaluate "$HELDOUT" --workdir "$RESULTS/default-model-eval-lin" --checkpoint "$CHECKPOINT" \
    --crf "dorf:$DORF" --resolution "$RES" --methods stages_dequantization_linearization,mean_crf,g0,srgb,gamma22

echo "== learning curves"
MEAN_RMSE="$("$PY" - "$DORF" <<'PYEOF'
import sys, numpy as np
from hdrjax.camera import crf
train = np.asarray(crf.load_bank(f"dorf:{sys.argv[1]}", "train").inverse)
test = np.asarray(crf.load_bank(f"dorf:{sys.argv[1]}", "test").inverse)
print(f"{np.sqrt(np.mean((train.mean(0) - test) ** 2, axis=1)).mean():.4f}")
PYEOF
)"
RUN_ARGS=()
for stage in dequantization linearization hallucination refinement joint; do
    [ -f "$RUNS/$stage/metrics.jsonl" ] && RUN_ARGS+=(--run "$stage=$RUNS/$stage")
done
if [ "${#RUN_ARGS[@]}" -gt 0 ]; then
    "$PY" -m experiments.default_model.plot_curves "${RUN_ARGS[@]}" --mean-curve-rmse "$MEAN_RMSE" --out "$RESULTS/training-curves"
    [ -f "$RUNS/stages.json" ] && cp "$RUNS/stages.json" "$RESULTS/training-stages.json"
else
    echo "no $RUNS/<stage>/metrics.jsonl: learning curves skipped"
fi

echo "== held-out examples"
"$PY" -m experiments.default_model.figure --checkpoint "$CHECKPOINT" --crf "dorf:$DORF" --crf-index 1 \
    --images "$SHARED/train_hdr/noon_grass_1k.hdr" "$SHARED/train_hdr/brown_photostudio_02_1k.hdr" \
             "$SHARED/real_hdr/Desk.exr" \
    --out "$RESULTS/held-out-examples.png"
