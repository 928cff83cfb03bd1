"""The error-budget tables of docs/training.md, generated from the committed evaluation (never typed).

    python -m experiments.default_model.error_budget --write    # rewrite the blocks of docs/training.md
    python -m experiments.default_model.error_budget --check    # exit 1 if a block is not what the files give

Reads experiments/results/default-model-eval/ (`python -m hdrjax.evaluate --error-budget`, run by
experiments/default_model/evaluate.sh): bands.csv and gaps.csv (hdrjax/evaluation/budget.py),
speckle.csv (hdrjax/evaluation/speckle.py), curves.csv (hdrjax/evaluation/curve_levels.py),
summary.csv and protocol.json. The blocks (`<!-- NAME:begin -->` … `<!-- NAME:end -->` in
docs/training.md, as experiments/readme_tables.py does for README.md):

* error-budget  PU21 error per intensity band and method, what a perfect band would add, and
                where the gaps between methods lie;
* speckle       the speckle figure per method and its parts;
* lin-curve     the Linearization-Net's curve error along the LDR levels beside inverse sRGB's;
* lin-loss-ab   experiments/default_model/lin_loss_ab.py (lin-loss-ab.json): the shipped Linearization-Net
                continued with the reference loss and with the PU21 image term;
* curve-averaging  experiments/default_model/curve_averaging.py (curve-averaging.json): the
                arithmetic against the geometric mean of the training curves as a fixed curve;
* dark-end      experiments/default_model/dark_end.py (dark-end.json, dark-end-cv.json): the
                Deq + Lin prefix with the curve's dark end from the prior shape, per knot;
* dark-codes    dark_end.py --dark-codes (dark-end-codes.json): the network's curve against the
                true one in the dark codes, per set and exposure, and the sets' typical curves.
* speckle-sources  the true-CRF oracle's speckle with the camera's noise and JPEG switched off
                (speckle-sources/<variant>/, `hdrjax.evaluate --no-noise --jpeg-quality 100`).

tests/test_training_doc.py fails when a block differs from what this script gives.
"""
from __future__ import annotations

import csv
import json
import math
import pathlib
import sys

from .. import readme_tables

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "training.md"
EVAL = ROOT / "experiments" / "results" / "default-model-eval"
LIN_AB = ROOT / "experiments" / "results" / "lin-loss-ab.json"
CURVE_AVERAGING = ROOT / "experiments" / "results" / "curve-averaging.json"
DARK_END = ROOT / "experiments" / "results" / "dark-end.json"
DARK_END_CV = ROOT / "experiments" / "results" / "dark-end-cv.json"
DARK_CODES = ROOT / "experiments" / "results" / "dark-end-codes.json"
SPECKLE_SOURCES = ROOT / "experiments" / "results" / "speckle-sources"
# The camera variants of the speckle-sources block, in its row order; "" = the held-out evaluation
# itself (EVAL). Each folder's protocol.json says which camera it had.
SOURCE_VARIANTS = ("", "q100", "nonoise", "quant")
COMMAND = "`python -m experiments.default_model.error_budget --write`"

LIN, HAL, REF = "stages_dequantization_linearization", "stages_hallucination", "stages_refinement"
DEQ, SRGB, TRUE, MEAN = "stages_dequantization_true_crf", "srgb", "true_crf", "mean_crf"
LABELS = {
    TRUE: "true CRF (oracle)",
    DEQ: "Deq → true CRF",
    SRGB: "inverse sRGB",
    MEAN: "DoRF mean curve",
    LIN: "Deq + Lin",
    HAL: "Deq + Lin + Hal",
    REF: "all four",
}
COLUMNS = (TRUE, DEQ, SRGB, LIN, HAL, REF)
BAND_LABELS = {
    "deep_shadow": "deep shadow (< 2⁻⁸)",
    "shadow": "shadow (2⁻⁸ – 2⁻⁴)",
    "mid": "mid (2⁻⁴ – ½)",
    "near_clipped": "near-clipped (½ – 1)",
    "clipped": "clipped (≥ 1)",
}
# (A, B) pairs of the gap table: what A would gain, band by band, with B's error there.
GAPS = ((HAL, SRGB), (LIN, SRGB), (HAL, TRUE), (LIN, HAL), (REF, HAL), (TRUE, DEQ))


def _rows(name: str, folder: pathlib.Path) -> list[dict]:
    with open(folder / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _num(v) -> float | None:
    return None if v in ("", None) else float(v)


def _f(v, digits=2, signed=False) -> str:
    if v is None:
        return "–"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _rel(path: pathlib.Path) -> str:
    """The folder as the documents cite it: relative to the repository when inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
            + ["| " + " | ".join(r) + " |" for r in rows])


def band_rows(folder: pathlib.Path = EVAL) -> dict[tuple[str, str], dict]:
    """bands.csv over all exposures: {(method, band): row}."""
    return {(r["method"], r["band"]): r for r in _rows("bands.csv", folder) if r["exposure"] == "all"}


def gap_gains(folder: pathlib.Path = EVAL) -> dict[tuple[str, str, str], float | None]:
    """gaps.csv: {(A, B, band or "all"): dB that A would gain with B's error in that band}."""
    return {(r["method"], r["versus"], r["band"]): _num(r["gain_db"]) for r in _rows("gaps.csv", folder)}


def budget_block(folder: pathlib.Path = EVAL) -> str:
    by = band_rows(folder)
    methods = [m for m in COLUMNS if (m, "mid") in by]
    proto = json.loads((folder / "protocol.json").read_text())
    samples = {int(by[(m, "mid")]["samples"]) for m in methods}
    share = {b: float(by[(methods[0], b)]["pixel_share"]) for b in BAND_LABELS}
    src = _rel(folder)
    L = [f"Generated by {COMMAND} from `{src}/bands.csv` and `gaps.csv` (`python -m hdrjax.evaluate "
         f"--error-budget`, run by `experiments/default_model/evaluate.sh`; the held-out evaluation of the README: "
         f"{proto['examples']} test patches × {len(proto.get('crfs', []))} test CRFs × "
         f"{len(proto['config']['exposure_stops'])} exposures, {'/'.join(str(s) for s in sorted(samples))} scored "
         f"samples per method). A band holds the colour channel values of the ground truth H·t by their value "
         "relative to the camera's clipping point 1 (`hdrjax/evaluation/budget.py`).",
         "",
         "Mean squared PU21 error per band (PU21 units², pooled over the samples; PU21-PSNR = 10 log10(256² / MSE)):",
         ""]
    head = ["band", "share of values"] + [LABELS[m] for m in methods]
    rows = [[label, f"{100 * share[b]:.1f} %"] + [_f(_num(by[(m, b)]["mse"]), 1) for m in methods]
            for b, label in BAND_LABELS.items()]
    rows.append(["**PU21-PSNR** (mean over samples)", ""] + [_f(_num(by[(m, "mid")]["pu21_psnr"])) for m in methods])
    L += _table(head, rows)
    L += ["", "dB the mean PU21-PSNR would gain if this band alone were perfect (`gain_db`):", ""]
    rows = [[label] + [_f(_num(by[(m, b)]["gain_db"]), signed=True) for m in methods] for b, label in BAND_LABELS.items()]
    L += _table(["band"] + [LABELS[m] for m in methods], rows)
    gaps = gap_gains(folder)
    pairs = [(a, b) for a, b in GAPS if (a, b, "all") in gaps]
    L += ["", "Where the gaps lie (`gaps.csv`): the dB that A would gain if its squared error in a band were B's "
              "(negative: B is worse there); the last row is the whole gap, mean PSNR of B − mean PSNR of A, on "
              "the same samples:", ""]
    rows = [[label] + [_f(gaps[(a, b, band)], signed=True) for a, b in pairs] for band, label in BAND_LABELS.items()]
    rows.append(["**whole gap**"] + [_f(gaps[(a, b, "all")], signed=True) for a, b in pairs])
    L += _table(["band"] + [f"A = {LABELS[a]}, B = {LABELS[b]}" for a, b in pairs], rows)
    return "\n".join(L)


def speckle_block(folder: pathlib.Path = EVAL) -> str:
    from hdrjax.evaluation import speckle

    rows = {r["method"]: r for r in _rows("speckle.csv", folder)}
    src = _rel(folder)
    L = [f"Generated by {COMMAND} from `{src}/speckle.csv` (`hdrjax/evaluation/speckle.py`: smooth dark region = "
         f"ground-truth luminance below 2⁻⁴ and local PU21 standard deviation below {speckle.SMOOTH_MAX:g} over "
         f"{speckle.WINDOW}×{speckle.WINDOW} px; figure = RMS of the {speckle.WINDOW}×{speckle.WINDOW} high-pass of "
         "PU21 luminance and colour differences there, reconstruction / ground truth; 1 = as clean as the truth; "
         f"target ≤ {speckle.TARGET:g}).",
         ""]
    methods = [m for m in COLUMNS + (MEAN,) if m in rows and rows[m]["speckle_mean"]]
    head = ["method", "samples with a region", "region (share of pixels)", "speckle (mean)", "median",
            f"samples above {speckle.TARGET:g}", "luminance part", "colour part"]
    body = [[LABELS[m], rows[m]["samples"], f"{100 * float(rows[m]['region_share']):.0f} %",
             _f(_num(rows[m]["speckle_mean"])), _f(_num(rows[m]["speckle_median"])),
             f"{100 * float(rows[m]['above_target']):.0f} %", _f(_num(rows[m]["lum_ratio"])),
             _f(_num(rows[m]["chroma_ratio"]))] for m in methods]
    return "\n".join(L + _table(head, body))


def lin_curve_block(folder: pathlib.Path = EVAL) -> str:
    rows = _rows("curves.csv", folder)
    by = {(r["method"], r["bin"]): r for r in rows}
    summary = {(r["method"], r["exposure"]): r for r in _rows("summary.csv", folder)}
    src = _rel(folder)
    L = [f"Generated by {COMMAND} from `{src}/curves.csv` and `summary.csv` (`hdrjax/evaluation/curve_levels.py`: "
         "each sample's inverse CRF against the true one, at the LDR levels of its input; PU21 error = the curve "
         "error through the sample's display model, as the metric sees it, without the JPEG's own errors).",
         "",
         "The whole curve: uniform RMSE (what the inverse-CRF RMSE reports), weighted by where the pixels are, and "
         "in PU21 units weighted by pixels; curve-PSNR = the PU21-PSNR the curve alone would give; image = the "
         "method's PU21-PSNR in the evaluation:",
         ""]
    methods = [m for m in (LIN, SRGB, MEAN, TRUE) if (m, "all") in by]
    head = ["method", "curve RMSE (uniform)", "RMSE weighted by pixels", "PU21 RMSE weighted by pixels",
            "curve-PSNR", "image PU21-PSNR"]
    body = [[LABELS[m], _f(_num(by[(m, "all")]["curve_rmse"]), 4), _f(_num(by[(m, "all")]["pixel_rmse"]), 4),
             _f(_num(by[(m, "all")]["pu21_rmse"])), _f(_num(by[(m, "all")]["curve_psnr"])),
             _f(_num(summary[(m, "all")]["pu21_psnr_mean"]))] for m in methods]
    L += _table(head, body)
    pair = [m for m in (LIN, SRGB) if (m, "all") in by]
    L += ["", "Along the curve, by 8-bit input code (bias = mean predicted − true curve; share = the bin's part of "
              "the method's pixel-weighted squared PU21 error):", ""]
    head = ["codes", "pixels"] + [f"{LABELS[m]}: {what}" for m in pair
                                  for what in ("RMSE", "bias", "PU21 RMSE", "share")]
    bins = [r["bin"] for r in rows if r["method"] == pair[0] and r["bin"] != "all"]
    body = []
    for b in bins:
        r0 = by[(pair[0], b)]
        line = [r0["codes"], f"{100 * float(r0['pixel_share']):.1f} %"]
        for m in pair:
            r = by[(m, b)]
            line += [_f(_num(r["curve_rmse"]), 4), _f(_num(r["curve_bias"]), 4, signed=True),
                     _f(_num(r["pu21_rmse"])), f"{100 * float(r['pu21_error_share']):.0f} %"]
        body.append(line)
    return "\n".join(L + _table(head, body))


def lin_ab_block(ab_path: pathlib.Path = LIN_AB, folder: pathlib.Path = EVAL) -> str:
    ab = json.loads(ab_path.read_text())
    s = ab["settings"]
    summary = {(r["method"], r["exposure"]): r for r in _rows("summary.csv", folder)}
    shipped = summary[(LIN, "all")]
    curves = {r["bin"]: r for r in _rows("curves.csv", folder) if r["method"] == LIN}
    bands = {r["band"]: r for r in _rows("bands.csv", folder) if r["method"] == LIN and r["exposure"] == "all"}
    L = [f"Generated by {COMMAND} from `{_rel(ab_path)}` (`experiments/default_model/lin_loss_ab.py`, {ab['created']}: the "
         f"shipped Linearization-Net continued for {s['steps']} steps of the recipe's linearization stage "
         f"({s['size']} size, learning rate {s['learning_rate']:g}, cosine) with each `loss.lin_image_space`, then "
         f"Deq + Lin on the held-out evaluation above) and, for the shipped row, `{_rel(folder)}/`.",
         ""]
    head = ["Linearization-Net", "PU21-PSNR", "inverse-CRF RMSE", "curve bias, codes 0–15",
            "PU21 RMSE of the curve, codes 0–15", "deep-shadow MSE", "shadow MSE", "mid MSE", "speckle"]
    body = [["the model shipped now (for scale: the arms continued the model shipped when they ran)", _f(_num(shipped["pu21_psnr_mean"])),
             _f(_num(shipped["inverse_crf_rmse_mean"]), 4), _f(_num(curves["0"]["curve_bias"]), 4, signed=True),
             _f(_num(curves["0"]["pu21_rmse"]), 1)]
            + [_f(_num(bands[b]["mse"]), 0) for b in ("deep_shadow", "shadow", "mid")]
            + [_f(_num(shipped.get("speckle_mean")))]]
    labels = {"linear": "+ steps, `linear` (reference)", "pu21": "+ steps, `pu21`"}
    for arm, r in ab["arms"].items():
        bins = {c["bin"]: c for c in r["curves"] if c["method"] == LIN}
        band = {b["band"]: b for b in r["bands"]}
        body.append([labels.get(arm, arm).replace("steps", f"{r.get('steps', s['steps'])} steps"), _f(r["pu21_psnr"]),
                     _f(r["inverse_crf_rmse"], 4), _f(bins["0"]["curve_bias"], 4, signed=True),
                     _f(bins["0"]["pu21_rmse"], 1)]
                    + [_f(band[b]["mse"], 0) for b in ("deep_shadow", "shadow", "mid")] + [_f(r["speckle"])])
    return "\n".join(L + _table(head, body))


def curve_averaging_block(path: pathlib.Path = CURVE_AVERAGING) -> str:
    r = json.loads(path.read_text())
    sets = r["sets"]
    L = [f"Generated by {COMMAND} from `{_rel(path)}` (`experiments/default_model/curve_averaging.py`, "
         f"{r['created']}, `{r['command']}`): each fixed curve applied to every sample of the evaluation protocol; "
         + "; ".join(f"`{name}`: {len(v['files'])} files × {len(v['crfs'])} DoRF {name.replace('_', '-')} curves"
                     for name, v in sets.items()) + ".",
         ""]
    names = list(next(iter(sets.values()))["methods"])
    label = {"arithmetic_mean": "arithmetic mean of DoRF's training curves (the `linear` term's answer)",
             "srgb": "inverse sRGB"}
    head = ["fixed curve"] + [f"PU21-PSNR, {n.replace('_', '-')}" for n in sets] + [f"speckle, {n.replace('_', '-')}" for n in sets]
    body = []
    for m in names:
        text = label.get(m) or ("geometric mean, eps " + m.rsplit("eps", 1)[1]
                                + (" (the `log` term's answer)" if m.endswith("eps0.001") else ""))
        body.append([text] + [_f(v["methods"][m]["pu21_psnr"]) for v in sets.values()]
                    + [_f(v["methods"][m]["speckle"]) for v in sets.values()])
    return "\n".join(L + _table(head, body))


def dark_end_block(path: pathlib.Path = DARK_END, cv_path: pathlib.Path = DARK_END_CV) -> str:
    """The Deq + Lin prefix with the network's curve and each dark end (dark_end.py's files)."""
    r = json.loads(path.read_text())
    cv = json.loads(cv_path.read_text()) if cv_path.exists() else None
    sets = r["sets"]
    L = [f"Generated by {COMMAND} from `{_rel(path)}` ({r['created']}, `{r['command']}`)"
         + (f" and `{_rel(cv_path)}` ({cv['created']}, `{cv['command']}`)" if cv else "")
         + " (`experiments/default_model/dark_end.py`): the Deq + Lin prefix of the sixth run's model; "
         + "; ".join(f"`{name}`: {len(v['files'])} files × {len(v['crfs'])} DoRF "
                     f"{'training' if name == 'train' else 'test'} curves" for name, v in sets.items())
         + ("; `train, cross-validated`: the prior shape from every other DoRF training curve, scored on the "
            f"others ({len(cv['sets']['train']['crfs'])} of them)" if cv else "")
         + ". Deep-shadow MSE in PU21², pooled as in bands.csv.",
         ""]

    def label(m):
        if m == "network":
            return "the network's curve (`lin_dark_end=\"network\"`, the reference)"
        if m == "srgb":
            return "inverse sRGB"
        code, power = m.removeprefix("prior_code").split("_power")
        return f"prior below code {code}" + (", level drawn to the prior's (power 1)" if power != "0" else "")

    columns = [("train", sets.get("train"), "pu21_psnr", 2)]
    if cv:
        columns.append(("train, cross-validated", cv["sets"]["train"], "pu21_psnr", 2))
    columns += [("held-out", sets.get("held_out"), "pu21_psnr", 2), ("held-out", sets.get("held_out"), "speckle", 2),
                ("held-out", sets.get("held_out"), "deep_shadow_mse", 0)]
    names = {"pu21_psnr": "PU21-PSNR", "speckle": "speckle", "deep_shadow_mse": "deep-shadow MSE"}
    head = ["curve"] + [f"{names[metric]}, {title}" for title, _, metric, _ in columns]
    body = []
    for m in next(iter(sets.values()))["methods"]:
        body.append([label(m)] + [_f(v["methods"][m][metric], digits) if v and m in v["methods"] else "–"
                                  for _, v, metric, digits in columns])
    return "\n".join(L + _table(head, body))


def dark_codes_block(path: pathlib.Path = DARK_CODES) -> str:
    """The network's curve over the true one in the dark codes, per set and exposure, and the
    typical true curve of each set there (dark_end.py --dark-codes)."""
    r = json.loads(path.read_text())
    sets = r["dark_codes"]
    codes = list(next(iter(next(iter(sets.values()))["stops"].values()))["codes"])
    L = [f"Generated by {COMMAND} from `{_rel(path)}` ({r['created']}, `{r['command']}`, "
         "`experiments/default_model/dark_end.py`): the Linearization-Net's own curve (`lin_dark_end=\"network\"`) "
         "after the Dequantization-Net, predicted / true inverse CRF at each 8-bit code, median over the samples "
         "(in brackets: the 10th and 90th percentiles); "
         + "; ".join(f"`{name}`: {len(v['files'])} files × {len(v['crfs'])} DoRF "
                     f"{'training' if name == 'train' else 'test'} curves" for name, v in sets.items()) + ".",
         ""]
    head = ["set", "exposure", "samples"] + [f"code {c}" for c in codes]
    body = []
    for name, v in sets.items():
        for stops, x in v["stops"].items():
            body.append([name.replace("_", "-"), f"{float(stops):+g} stops", str(x["samples"])]
                        + [f"{x['codes'][c]['ratio_q50']:.2f} ({x['codes'][c]['ratio_q10']:.2f}–"
                           f"{x['codes'][c]['ratio_q90']:.2f})" for c in codes])
    L += _table(head, body) + ["", "The typical true inverse CRF at those codes: the geometric mean (eps 10⁻⁴, "
                               "the prior's) of each set of curves, beside inverse sRGB:", ""]
    label = {"dorf_train": "all of DoRF's training curves", "dorf_test": "all of DoRF's test curves",
             "train_set": "the `train` set's curves", "held_out_set": "the `held-out` set's curves",
             "srgb": "inverse sRGB"}
    levels = r["curve_levels"]
    body = [[label.get(name, name), str(v["curves"])] + [f"{v['level'][c]:.4f}" for c in codes]
            for name, v in levels.items()]
    return "\n".join(L + _table(["curves", "count"] + [f"code {c}" for c in codes], body))


def speckle_sources_block(path: pathlib.Path = SPECKLE_SOURCES, folder: pathlib.Path = EVAL) -> str:
    """The true-CRF oracle's speckle and PU21-PSNR as the camera's noise and JPEG are switched off:
    what of the input's speckle a perfect curve inherits from which part of the camera."""
    from hdrjax.evaluation import speckle

    L = [f"Generated by {COMMAND} from `{_rel(folder)}/speckle.csv` (the protocol's camera) and "
         f"`{_rel(path)}/<variant>/speckle.csv` and `summary.csv` (the same samples through the true inverse CRF, "
         "`python -m hdrjax.evaluate runs/default-model-heldout --crf dorf:../shared/data/crf/dorf_201.npz "
         "--max-crfs 3 --resolution 256 --methods true_crf --error-budget` plus `--jpeg-quality 100` and/or "
         "`--no-noise`; the masked samples differ a little with the camera).", ""]
    body = []
    for sub in SOURCE_VARIANTS:
        where = path / sub if sub else folder
        camera = json.loads((where / "protocol.json").read_text())["config"]
        noise, jpeg = ("yes" if camera["noise"] else "no"), f"quality {camera['jpeg_quality']}"
        spk = {r["method"]: r for r in _rows("speckle.csv", where)}[TRUE]
        psnr = {(r["method"], r["exposure"]): r for r in _rows("summary.csv", where)}[(TRUE, "all")]
        body.append([f"`{sub}`" if sub else "the protocol", noise, jpeg, psnr["n"],
                     _f(_num(psnr["pu21_psnr_mean"])), _f(_num(spk["speckle_mean"])),
                     _f(_num(spk["speckle_median"])), f"{100 * float(spk['above_target']):.0f} %",
                     _f(_num(spk["lum_ratio"])), _f(_num(spk["chroma_ratio"]))])
    head = ["camera", "sensor noise", "JPEG", "samples", "PU21-PSNR", "speckle (mean)", "median",
            f"samples above {speckle.TARGET:g}", "luminance part", "colour part"]
    return "\n".join(L + _table(head, body))


def blocks(folder: pathlib.Path = EVAL) -> dict[str, str]:
    """Every block's text (without its markers), from the result folder."""
    return {"error-budget": budget_block(folder), "speckle": speckle_block(folder),
            "lin-curve": lin_curve_block(folder), "lin-loss-ab": lin_ab_block(LIN_AB, folder),
            "curve-averaging": curve_averaging_block(CURVE_AVERAGING), "dark-end": dark_end_block(),
            "dark-codes": dark_codes_block(), "speckle-sources": speckle_sources_block(folder=folder)}


def main(argv=None) -> int:
    return readme_tables.block_command(argv, DOC, blocks, "experiments.default_model.error_budget",
                                       __doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())
