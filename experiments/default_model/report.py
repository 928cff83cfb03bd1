"""The README section on the default model, generated from its result files (never typed).

    python -m experiments.default_model.report            # rewrite the README block and the .md
    python -m experiments.default_model.report --check    # exit 1 if the README is out of date

Reads (all committed): experiments/results/default-model-eval/summary.csv, per_image.csv,
protocol.json, bands.csv and gaps.csv (`python -m hdrjax.evaluate --error-budget`),
experiments/results/training-stages.json (the recipe's stages.json),
experiments/results/training-curves.json (experiments/default_model/plot_curves.py),
hdrjax/weights/default/manifest.json (its `history` and `training_total`, where the export
wrote them, give the training the weights have had over all runs) and, where it exists,
experiments/results/weights-storage.json (experiments/default_model/weights_storage.py).
Writes experiments/results/default-model.md and the README text between
`<!-- default-model:begin -->` and `<!-- default-model:end -->`; with --manifest also stores
the overall evaluation numbers in the manifest.  `--results`, `--weights` and `--readme` point
it at other files (a new evaluation before it is committed).

The section holds issue #20's targets, each measured and marked met or not met, the per-file
table (PU21-PSNR of each held-out file, its crops pooled, against inverse sRGB; its samples,
weighted, must give summary.csv's overall mean, or the program stops with an error) and the
error budget per intensity band (experiments/default_model/error_budget.py, whose full tables
are in docs/training.md).
"""
from __future__ import annotations

import argparse
import csv
import json
import pathlib
import re
import sys

from hdrjax.errors import HdrjaxError

from .. import results_io
from . import error_budget

ROOT = pathlib.Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results"
EVAL = RESULTS / "default-model-eval"
BEGIN, END = "<!-- default-model:begin -->", "<!-- default-model:end -->"

# (method in summary.csv, label); the shipped model is a joint checkpoint, so its output is
# the stages_refinement row.
STAGE_ROWS = {
    "refinement": ("stages_refinement", "Deq + Lin + Hal + Ref (all four stages)"),
    "hallucination": ("stages_hallucination", "Deq + Lin + Hal"),
    "linearization": ("stages_dequantization_linearization", "Deq + Lin"),
}
ROWS = (
    STAGE_ROWS["refinement"],
    STAGE_ROWS["hallucination"],
    STAGE_ROWS["linearization"],
    ("identity", "identity (LDR as linear)"),
    ("srgb", "inverse sRGB"),
    ("gamma22", "gamma 2.2"),
    ("g0", "mean inverse CRF g0 of the basis"),
    ("mean_crf", "mean inverse CRF of DoRF's training curves"),
    ("akyuz2007", "Akyüz et al. 2007 expansion"),
    ("true_crf", "oracle: true inverse CRF"),
)
MODEL_ROWS = {"stages_refinement", "stages_hallucination", "stages_dequantization_linearization"}
# Methods that use the true curve (not baselines a user could run): stages_dequantization_true_crf is the
# Dequantization-Net through it (the error budget of docs/training.md).
ORACLES = {"true_crf", "stages_dequantization_true_crf"}
# Issue #20's "fixed curves": the best of them is what the model is measured against.
FIXED_CURVES = ("srgb", "gamma22", "mean_crf")
LIN_PREFIX = STAGE_ROWS["linearization"][0]
# Issue #20's targets, in dB PU21-PSNR: the shipped model and its Deq + Lin prefix over the best
# fixed curve, and no held-out file further below inverse sRGB than PER_FILE_FLOOR_DB.
SHIPPED_MARGIN_DB, LIN_MARGIN_DB, PER_FILE_FLOOR_DB = 1.5, 1.0, -0.5
# The crop index that the evaluation appends to a file's stem in per_image.csv (`CandleGlass_0`).
CROP_SUFFIX = re.compile(r"_\d+$")


class ReportError(HdrjaxError):
    """The result files disagree with each other (the message says how)."""


def _overall(summary_csv: pathlib.Path) -> dict[str, dict[str, float]]:
    out = {}
    with open(summary_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row["exposure"] in ("all", "overall", ""):
                out[row["method"]] = {k: (float(v) if v not in ("", None) else None) for k, v in row.items()
                                      if k not in ("method", "exposure")}
    return out


def trend_per_doubling(points, column: int) -> float | None:
    """Least-squares slope of metric vs log2(images seen) over the last 3/4 of the points.

    What a further doubling of the training images would add if the trend held (a
    straight line in log-images; the early, fast part of the curve is left out)."""
    import numpy as np

    pts = [(p[0], p[column]) for p in points if p[0] > 0 and p[column] is not None]
    if len(pts) < 4:
        return None
    pts = pts[len(pts) // 4:]
    x = np.log2([p[0] for p in pts])
    y = np.asarray([p[1] for p in pts], float)
    if np.ptp(x) == 0:
        return None
    return float(np.polyfit(x, y, 1)[0])


def _fmt(v, digits=2):
    return "–" if v is None else f"{v:.{digits}f}"


WEIGHTS = ROOT / "hdrjax" / "weights" / "default"


def _mean(values):
    return sum(values) / len(values) if values else None


def per_file(per_image_csv: pathlib.Path, methods) -> dict[str, dict[str, dict]]:
    """{file: {method: {"pu21": {sample: dB}, "speckle": [ratio, ...]}}} over the scored samples.

    A file's crops are pooled (`image` is the file's stem + `_<crop>`); a sample is (crop, CRF,
    exposure); rows with mask 0 (too many extreme pixels) have no metrics and are left out, as
    in summary.csv."""
    out: dict[str, dict[str, dict]] = {}
    with open(per_image_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row["method"] not in methods or row["mask"] != "1" or row["pu21_psnr"] in ("", None):
                continue
            entry = out.setdefault(CROP_SUFFIX.sub("", row["image"]), {}).setdefault(
                row["method"], {"pu21": {}, "speckle": []})
            entry["pu21"][(row["image"], row["crf"], row["stops"])] = float(row["pu21_psnr"])
            if row.get("speckle") not in ("", None):
                entry["speckle"].append(float(row["speckle"]))
    return out


def check_per_file(files: dict, overall: dict, source: str) -> None:
    """The files' means weighted by their sample counts must be summary.csv's overall mean."""
    methods = {m for by in files.values() for m in by}
    for method in sorted(methods):
        n = sum(len(by[method]["pu21"]) for by in files.values() if method in by)
        pooled = sum(_mean(list(by[method]["pu21"].values())) * len(by[method]["pu21"])
                     for by in files.values() if method in by) / n
        want = overall.get(method, {})
        if want.get("n") != n or abs(pooled - want["pu21_psnr_mean"]) > 0.01:
            raise ReportError(f"{source}: {method} has {n} scored samples, mean PU21-PSNR {pooled:.4f}, but "
                              f"summary.csv has {'no row' if want.get('n') is None else int(want['n'])} and "
                              f"{want.get('pu21_psnr_mean')}")


def per_file_table(files: dict, shipped: str) -> tuple[list[str], list[tuple[str, float]]]:
    """(table lines, [(file, shipped − inverse sRGB in dB)]), worst file first."""
    def pu21(by, method):
        return _mean(list(by[method]["pu21"].values())) if method in by else None

    rows = []
    for name, by in files.items():
        if shipped not in by or "srgb" not in by:
            continue
        common = [k for k in by[shipped]["pu21"] if k in by["srgb"]["pu21"]]
        diff = _mean([by[shipped]["pu21"][k] - by["srgb"]["pu21"][k] for k in common])
        rows.append((diff, name, by))
    rows.sort(key=lambda r: r[0])
    lines = ["| held-out file | samples | default model | inverse sRGB | default − sRGB | Deq + Lin | "
             "oracle: true CRF | speckle, default model |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for diff, name, by in rows:
        below = diff < PER_FILE_FLOOR_DB
        mark = (lambda t: f"**{t}**") if below else (lambda t: t)
        lines.append(f"| {mark(name)} | {len(by[shipped]['pu21'])} | {_fmt(pu21(by, shipped))} | "
                     f"{_fmt(pu21(by, 'srgb'))} | {mark(f'{diff:+.2f}')} | {_fmt(pu21(by, LIN_PREFIX))} | "
                     f"{_fmt(pu21(by, 'true_crf'))} | {_fmt(_mean(by[shipped]['speckle']))} |")
    return lines, [(name, diff) for diff, name, _ in rows]


def budget_table(eval_dir: pathlib.Path, shipped: str, shipped_label: str) -> list[str]:
    """Per intensity band: what a perfect band would add to the default model and to inverse
    sRGB (`gain_db` of bands.csv), and what the default model would gain with inverse sRGB's
    error there (gaps.csv); the rendering is error_budget.py's, for docs/training.md."""
    if not (eval_dir / "bands.csv").is_file():
        return []
    by = error_budget.band_rows(eval_dir)
    gaps = error_budget.gap_gains(eval_dir) if (eval_dir / "gaps.csv").is_file() else {}
    srgb = error_budget.SRGB
    if (shipped, "mid") not in by or (srgb, "mid") not in by:
        return []
    num, f = error_budget._num, error_budget._f
    head = ["band", "share of values", f"{shipped_label}: dB if the band were perfect",
            "inverse sRGB: dB if the band were perfect", f"{shipped_label} with inverse sRGB's error in the band"]
    body = [[label, f"{100 * float(by[(shipped, b)]['pixel_share']):.1f} %",
             f(num(by[(shipped, b)]["gain_db"]), signed=True), f(num(by[(srgb, b)]["gain_db"]), signed=True),
             f(gaps.get((shipped, srgb, b)), signed=True)] for b, label in error_budget.BAND_LABELS.items()]
    body.append(["**PU21-PSNR** (mean over samples)", "", f(num(by[(shipped, "mid")]["pu21_psnr"])),
                 f(num(by[(srgb, "mid")]["pu21_psnr"])),
                 f"{f(gaps.get((shipped, srgb, 'all')), signed=True)} (all bands)"])
    return error_budget._table(head, body)


def training_lines(manifest: dict, stages: dict) -> list[str]:
    """The first paragraph: how long the weights were trained, and how they are stored."""
    total_s = sum(e["wall_seconds"] for e in stages.values())
    files = manifest["files"]
    stored = (f"weights: `hdrjax/weights/default` ({len(files)} {manifest.get('dtype', 'float32')} `.npz` shards, "
              f"{sum(f['bytes'] for f in files) / 2**20:.0f} MiB; the VGG16 encoder is "
              f"{'frozen at ImageNet weights and not stored' if manifest.get('encoder') else 'stored'})")
    history = manifest.get("history")
    if not history:
        return [f"Trained with `python -m experiments.default_model.train --size cpu` (configs/recipe.py) on this "
                f"project's 2-core CPU in {total_s / 3600:.1f} h of wall time; {stored}. Source: "
                "`experiments/results/training-stages.json`."]
    total = manifest.get("training_total")
    if not total:
        from hdrjax.training import chain

        total = chain.history_totals(history)
    lines = [f"Trained with `python -m experiments.default_model.train` (configs/recipe.py): in total the shipped "
             f"weights have had {total['wall_seconds'] / 3600:.1f} h of training wall time and "
             f"{total['images_seen']:,} training images over {len(history)} run{'s' if len(history) != 1 else ''}, "
             f"each continuing from the one before (manifest `history`, `training_total`); the last run's stages "
             f"took {total_s / 3600:.1f} h (`experiments/results/training-stages.json`, table below); {stored}.",
             "",
             "| run | date | commit | stages | platform | images seen | wall time |",
             "| ---: | --- | --- | --- | --- | ---: | ---: |"]
    for i, run in enumerate(history, 1):
        entries = run.get("stages") or {}
        platforms = sorted({e.get("platform") for e in entries.values() if e.get("platform")})
        lines.append(f"| {i} | {(run.get('created') or '–')[:10]} | {(run.get('commit') or '–')[:7]} | "
                     f"{', '.join(entries) or '–'} | {', '.join(platforms) or '–'} | "
                     f"{sum(e.get('images_seen', 0) for e in entries.values()):,} | "
                     f"{sum(e.get('wall_seconds', 0.0) for e in entries.values()) / 60:.0f} min |")
    return lines


def storage_line(path: pathlib.Path) -> list[str]:
    """float16 against float32 storage (experiments/default_model/weights_storage.py), where measured."""
    if not path.is_file():
        return []
    r = json.loads(path.read_text())
    psnr, between, size = r["pu21_psnr"], r["pu21_psnr_float16_vs_float32_output"], r["bytes"]
    return [f"Stored in float16 the same weights give {psnr['float16']:.2f} dB PU21-PSNR against {psnr['float32']:.2f} "
            f"dB in float32 on {r['samples']} held-out samples (the float16 output is {between['mean']:.1f} dB "
            f"PU21-PSNR from the float32 one, {between['min']:.1f} dB on the worst sample); each weight update adds "
            f"{size['float32']['git_object_bytes'] / 2**20:.0f} MiB to the git history in float32 and "
            f"{size['float16']['git_object_bytes'] / 2**20:.0f} MiB in float16 (zlib-compressed objects). Source: "
            "`experiments/results/weights-storage.json`.", ""]


def _verdict(ok: bool) -> str:
    return "met" if ok else "not met"


def build(results=RESULTS, manifest_path=WEIGHTS / "manifest.json") -> tuple[str, dict]:
    """(markdown, evaluation dict for the manifest)."""
    from hdrjax.evaluation import speckle

    eval_dir = results / "default-model-eval"
    overall = _overall(eval_dir / "summary.csv")
    protocol = json.loads((eval_dir / "protocol.json").read_text())
    stages = json.loads((results / "training-stages.json").read_text())
    curves = json.loads((results / "training-curves.json").read_text())
    manifest = json.loads(pathlib.Path(manifest_path).read_text())
    lines = training_lines(manifest, stages)
    lines.append("")
    lines.append("| stage | steps × batch | patch | images seen | wall time | last held-out metric | trend per "
                 "doubling of images |")
    lines.append("| --- | ---: | ---: | ---: | ---: | --- | ---: |")
    metric_names = {"dequantization": "psnr", "linearization": "curve_rmse", "hallucination": "pu21_psnr",
                    "refinement": "pu21_psnr", "joint": "pu21_psnr"}
    for stage, e in stages.items():
        c = curves.get("stages", {}).get(stage, {})
        metric = metric_names[stage]
        evals = c.get("eval", [])
        names = c.get("eval_metrics", [])
        last, trend = "", ""
        if evals and metric in names:
            last = f"{metric} {evals[-1][1 + names.index(metric)]:.4g}"
            slope = trend_per_doubling(evals, 1 + names.index(metric))
            trend = "" if slope is None else f"{slope:+.3g}"
        lines.append(f"| {stage} | {e['steps']} × {e['batch_size']} | {e['patch_size']}² | {e['images_seen']:,} | "
                     f"{e['wall_seconds'] / 60:.0f} min | {last} | {trend} |")
    lines.append("")
    lines.append("The trend is the least-squares slope of the held-out metric against log2(images seen) over the "
                 "last three quarters of each stage's evaluations: what one more doubling of the training images "
                 "would change if the curve kept its recent course (psnr and pu21_psnr in dB, curve_rmse in RMSE). "
                 "The stages are measured on what they are trained for: the hallucination row on its own "
                 "(teacher-forced: the clipped ground truth in), the refinement and joint rows on the whole chain "
                 "from the JPEG, "
                 "so their PU21 values are not comparable with each other.")
    lines.append("")
    mean_rmse = curves.get("mean_curve_rmse")
    lines.append("![learning curves](experiments/results/training-curves.png)")
    lines.append("")
    lines.append("Learning curves: `experiments/results/training-curves.json` / `.png` (training loss and the "
                 "periodic held-out metric of each stage against images seen; the held-out metric during "
                 "training uses pinhole views of the 8 held-out panoramas and DoRF's 10 test CRFs"
                 + (f"; dashed: always answering DoRF's mean training curve, RMSE {mean_rmse:.4f}" if mean_rmse else "")
                 + ").")
    lines.append("")
    cfg = protocol.get("config", {})
    lines.append(
        f"**Evaluation** (`experiments/results/default-model-eval/`, made by "
        f"`experiments/default_model/evaluate.sh`): the 12 held-out HDR files (8 panoramas never seen in "
        f"training + the 4 photos of `../shared/data/real_hdr`), {protocol.get('crf_spec', '?')}, exposures "
        f"{', '.join(f'{s:+g}' for s in cfg.get('exposure_stops', []))} stops, JPEG {cfg.get('jpeg_quality')}, "
        f"first/last {cfg.get('resolution')}² crops; samples with > 50 % extreme pixels excluded. Mean over samples:")
    lines.append("")
    lines.append("| method | PU21-PSNR | PU21-SSIM | log-PSNR | inverse-CRF RMSE | samples |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    output_stage = manifest.get("output_stage") or "refinement"
    shipped_method, shipped_label = STAGE_ROWS[output_stage]
    for method, label in ROWS:
        r = overall.get(method)
        if r is None:
            continue
        if method == shipped_method:
            label = f"**hdrjax default model**: {label}"
        elif method in MODEL_ROWS:
            label = f"stage prefix: {label}"
        lines.append(f"| {label} | {_fmt(r.get('pu21_psnr_mean'))} | {_fmt(r.get('pu21_ssim_mean'), 4)} | "
                     f"{_fmt(r.get('log_psnr_mean'))} | {_fmt(r.get('inverse_crf_rmse_mean'), 4)} | {int(r['n'])} |")
    lines.append("")
    ours = overall.get(shipped_method) or {}
    fixed = [(m, overall[m]) for m in FIXED_CURVES if (overall.get(m) or {}).get("pu21_psnr_mean") is not None]
    best_name, best = max(fixed, key=lambda mr: mr[1]["pu21_psnr_mean"], default=(None, None))
    evaluation = {"source": "experiments/results/default-model-eval", "protocol": protocol.get("command", ""),
                  "overall": {m: {k: overall[m].get(f"{k}_mean")
                                  for k in ("pu21_psnr", "pu21_ssim", "log_psnr", "inverse_crf_rmse")}
                              for m in overall}}
    per_image = eval_dir / "per_image.csv"
    files = per_file(per_image, {shipped_method, "srgb", LIN_PREFIX, "true_crf"}) if per_image.is_file() else {}
    if files:
        check_per_file(files, overall, str(per_image))
    file_lines, file_diffs = per_file_table(files, shipped_method)
    targets = {}
    if ours and best_name:
        labels = dict(ROWS)
        best_psnr = best["pu21_psnr_mean"]
        margin = ours["pu21_psnr_mean"] - best_psnr
        lines.append("Against the targets set for the default model (issue #20; computed from the files of the "
                     "tables here):")
        lines.append("")
        lines.append(f"- the default model ({shipped_label}), {ours['pu21_psnr_mean']:.2f} dB PU21-PSNR, against "
                     f"the best fixed curve ({labels[best_name]}, {best_psnr:.2f} dB; the best of "
                     f"{', '.join(labels[m] for m, _ in fixed)}): {margin:+.2f} dB (target: ≥ "
                     f"+{SHIPPED_MARGIN_DB:g} dB) — {_verdict(margin >= SHIPPED_MARGIN_DB)}.")
        targets.update(best_fixed_curve=best_name, margin_over_best_fixed_curve_db=margin)
        lin_psnr = (overall.get(LIN_PREFIX) or {}).get("pu21_psnr_mean")
        if lin_psnr is not None:
            lin_margin = lin_psnr - best_psnr
            lines.append(f"- its Deq + Lin prefix alone, {lin_psnr:.2f} dB, against the same curve: {lin_margin:+.2f} "
                         f"dB (target: ≥ +{LIN_MARGIN_DB:g} dB) — {_verdict(lin_margin >= LIN_MARGIN_DB)}.")
            targets["lin_margin_over_best_fixed_curve_db"] = lin_margin
        if file_diffs:
            below = [(n, d) for n, d in file_diffs if d < PER_FILE_FLOOR_DB]
            worst_name, worst = file_diffs[0]
            lines.append(f"- per held-out file against inverse sRGB (table below): worst {worst_name}, "
                         f"{worst:+.2f} dB; {len(below)} of {len(file_diffs)} files more than "
                         f"{-PER_FILE_FLOOR_DB:g} dB below it (target: none) — {_verdict(not below)}.")
            targets.update(worst_file_vs_srgb_db=worst, files_below_srgb=[n for n, _ in below])
        speck = ours.get("speckle_mean")
        if speck is not None:
            lines.append(f"- speckle in smooth dark regions, reconstruction / ground truth (`speckle_mean` of "
                         f"summary.csv, over the samples that have such a region): {speck:.2f} (target: ≤ "
                         f"{speckle.TARGET:g}) — {_verdict(speck <= speckle.TARGET)}.")
            targets["speckle"] = speck
        four = output_stage == "refinement"
        lines.append(f"- the shipped output is {'the four-stage output' if four else 'the output of ' + shipped_label} "
                     f"(manifest `output_stage`: {manifest.get('output_stage') or 'absent'}; target: the four-stage "
                     f"output) — {_verdict(four)}.")
        targets["four_stage_output"] = four
        if manifest.get("output_stage_reason"):
            lines.append(f"  Why: {manifest['output_stage_reason']}")
        lines.append("")
        lines.append("For reference (not targets):")
        lines.append("")
        oracle = overall.get("true_crf", {}).get("pu21_psnr_mean")
        if oracle is not None:
            lines.append(f"- the true-CRF oracle reaches {oracle:.2f} dB; the default model is "
                         f"{ours['pu21_psnr_mean'] - oracle:+.2f} dB from it.")
        lin_file = eval_dir.parent / "default-model-eval-lin" / "summary.csv"
        lin_rows = _overall(lin_file) if lin_file.is_file() else overall
        lin_where = ("all 10 DoRF test CRFs, `experiments/results/default-model-eval-lin/`" if lin_file.is_file()
                     else "the CRFs of the table")
        lin = lin_rows.get(LIN_PREFIX, {}).get("inverse_crf_rmse_mean")
        mean_crf = lin_rows.get("mean_crf", {}).get("inverse_crf_rmse_mean")
        if lin is not None and mean_crf is not None:
            lines.append(f"- Linearization-Net inverse-CRF RMSE on held-out CRFs ({lin_where}): {lin:.4f}, against "
                         f"{mean_crf:.4f} for always answering DoRF's mean training curve "
                         f"({abs(1 - lin / mean_crf) * 100:.0f} % {'lower' if lin < mean_crf else 'higher'}).")
            lin_on = lin_rows.get(LIN_PREFIX, {}).get("pu21_psnr_mean")
            srgb_on = lin_rows.get("srgb", {}).get("pu21_psnr_mean")
            if lin_on is not None and srgb_on is not None:
                lines.append(f"  On the same samples Deq + Lin reaches {lin_on:.2f} dB PU21-PSNR and the fixed inverse "
                             f"sRGB curve {srgb_on:.2f} dB"
                             + (": the lower curve RMSE has not turned into a better image: its PU21-weighted error "
                                "sits in the darkest LDR codes, where the curve RMSE barely looks (docs/training.md, "
                                "\"Why a lower curve RMSE gave a worse image\")." if lin < mean_crf and lin_on < srgb_on
                                else "."))
        targets.update(vs_true_crf_oracle_db=None if oracle is None else ours["pu21_psnr_mean"] - oracle,
                       lin_curve_rmse=lin, mean_curve_rmse=mean_crf)
        evaluation["targets"] = targets
    rising = [stage for stage, e in stages.items()
              if (lambda c: c.get("eval") and metric_names[stage] in c.get("eval_metrics", []) and
                  (trend_per_doubling(c["eval"], 1 + c["eval_metrics"].index(metric_names[stage])) or 0)
                  * (-1 if metric_names[stage] == "curve_rmse" else 1) > 0)(curves.get("stages", {}).get(stage, {}))]
    if rising:
        lines.append(f"- still improving at the end (trend column): {', '.join(rising)}; the recipe's budget, not "
                     "a plateau, is what stops these numbers here.")
    lines.append("")
    if file_lines[2:]:
        lines.append(f"**Per held-out file** (`experiments/results/default-model-eval/per_image.csv`; a file's crops, "
                     f"CRFs and exposures pooled, mean PU21-PSNR over its scored samples; speckle over the samples "
                     f"with a smooth dark region; worst against inverse sRGB first, **bold**: more than "
                     f"{-PER_FILE_FLOOR_DB:g} dB below it):")
        lines.append("")
        lines += file_lines
        lines.append("")
    budget = budget_table(eval_dir, shipped_method, "default model")
    if budget:
        lines.append("**Error budget** (`experiments/results/default-model-eval/bands.csv` and `gaps.csv`, "
                     "`hdrjax/evaluation/budget.py`): the ground truth's colour values in bands of intensity relative "
                     "to the camera's clipping point 1; per band, how many dB the mean PU21-PSNR would rise if that "
                     "band alone were perfect, and what the default model would gain (negative: lose) with inverse "
                     "sRGB's error in that band. Every method and the error per band: "
                     "[docs/training.md](docs/training.md#where-the-error-is-the-error-budget).")
        lines.append("")
        lines += budget
        lines.append("")
    lines += storage_line(results / "weights-storage.json")
    lines.append("![held-out examples](experiments/results/held-out-examples.png)")
    lines.append("")
    lines.append("Held-out examples (`experiments/results/held-out-examples.png`, "
                 "`experiments/default_model/figure.py`): camera input, our reconstruction and the ground truth "
                 "tone-mapped the same way, then our reconstruction at −2, 0 and +2 stops, where recovered highlights "
                 "would show as detail instead of flat white.")
    return "\n".join(lines) + "\n", evaluation


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="only check that the README block is current")
    p.add_argument("--manifest", action="store_true", help="also store the evaluation in the manifest")
    p.add_argument("--results", type=pathlib.Path, default=RESULTS,
                   help="folder of the result files read, where default-model.md is written (default %(default)s)")
    p.add_argument("--weights", type=pathlib.Path, default=WEIGHTS,
                   help="shipped-model folder whose manifest.json is read (default %(default)s)")
    p.add_argument("--readme", type=pathlib.Path, default=ROOT / "README.md", help="default %(default)s")
    args = p.parse_args(argv)
    try:
        text, evaluation = build(args.results, args.weights / "manifest.json")
    except ReportError as e:
        from hdrjax import cli

        return cli.fail(e)
    readme = args.readme
    content = readme.read_text()
    if BEGIN not in content or END not in content:
        print(f"{readme}: no {BEGIN} … {END} block", file=sys.stderr)
        return 1
    head, rest = content.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = head + BEGIN + "\n" + text + END + tail
    if args.check:
        if new != content:
            print(f"{readme}: the default-model block is out of date: run python -m experiments.default_model.report",
                  file=sys.stderr)
            return 1
        return 0
    results_io.write_text(readme, new)
    md = results_io.write_text(args.results / "default-model.md", "# The default model\n\n" + text)
    if args.manifest:
        from hdrjax.weights import pretrained

        pretrained.update_manifest(args.weights, evaluation=evaluation)
    print(f"wrote {readme} (default-model block) and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
