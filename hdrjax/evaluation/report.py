"""The reports of an evaluation: CSV tables, the markdown summary, protocol.json, the protocol as text.

`write_outputs` writes `per_image.csv` (one row per method × image × CRF × exposure),
`summary.csv` and `summary.md` (mean ± sample standard deviation per method, per exposure and
overall) and `protocol.json` (every setting, the CRF names, the checkpoint, the skipped files,
timings) into a folder, each atomically; `protocol_text` states the protocol in one paragraph.
"""
from __future__ import annotations

import csv
import io as _pyio
import json
import math
import pathlib

from hdrjax.evaluation import budget, curve_levels, speckle
from hdrjax.evaluation.loop import CURVE_METRIC, EvalResult, format_stops
from hdrjax.evaluation.protocol import EvalError

# The leading columns of per_image.csv; the metric columns follow.
ROW_FIELDS = ("method", "image", "crf", "exposure", "stops", "jpeg_quality", "mask")


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return "inf" if v == math.inf else ("-inf" if v == -math.inf else ("nan" if v != v else f"{v:.6g}"))
    return str(v)


def _csv_text(fields, rows) -> str:
    buf = _pyio.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(fields)
    for r in rows:
        w.writerow([_cell(r.get(f)) if f != "stops" else format_stops(r.get(f)) for f in fields])
    return buf.getvalue()


def per_image_csv(result: EvalResult) -> str:
    """The per-sample table: one row per method × image × CRF × exposure."""
    return _csv_text(ROW_FIELDS + tuple(result.metric_names), result.rows)


def summary_csv(result: EvalResult) -> str:
    """The summary table as CSV: method, exposure, n, masked, <metric>_mean, <metric>_std …"""
    fields = ("method", "exposure", "n", "masked") + tuple(
        f"{m}_{s}" for m in result.metric_names for s in ("mean", "std"))
    return _csv_text(fields, result.summary)


# The error budget's files (`--error-budget`): name -> (key in result.budget, columns).
BUDGET_FILES = {
    "bands.csv": ("bands", budget.BUDGET_FIELDS),
    "gaps.csv": ("gaps", budget.GAP_FIELDS),
    "speckle.csv": ("speckle", speckle.SPECKLE_FIELDS),
    "curves.csv": ("curves", curve_levels.LEVEL_FIELDS),
}


def _pm(row, m, digits):
    mean, std = row.get(f"{m}_mean"), row.get(f"{m}_std")
    if mean is None:
        return "–"
    if std is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _digits(metric: str) -> int:
    return 4 if ("ssim" in metric or metric == CURVE_METRIC) else 2


def protocol_text(protocol: dict) -> str:
    """One paragraph stating the protocol behind the numbers."""
    c = protocol.get("config", {})
    parts = []
    if protocol.get("kind") == "real":
        parts.append(f"real LDR/HDR pairs from {protocol.get('source', '?')}; input = the camera JPEG")
        crops = "whole images" if c.get("full_image") else f"first/last {c.get('resolution')}² crops at native resolution"
    else:
        crfs = protocol.get("crfs", [])
        parts.append(f"synthetic LDR from {protocol.get('source', '?')} with {len(crfs)} test CRFs "
                     f"({protocol.get('crf_spec', '?')}), exposures 2^{{{', '.join(format_stops(s) for s in c.get('exposure_stops', []))}}}, "
                     f"JPEG quality {c.get('jpeg_quality')}, synthesis noise {'on' if c.get('noise') else 'off'}; "
                     + ("ground truth = the noisy exposed HDR X" if c.get("target") == "noisy"
                        else "ground truth = noise-free HDR × exposure"))
        crops = ("whole images" if c.get("full_image") else
                 f"short side resized to {c.get('resolution')} ({c.get('resize_interpolation')}), first/last "
                 f"{c.get('resolution')}² crops")
    parts.append(f"{crops}, each scaled to mean 0.5")
    parts.append("samples with > 50 % of gray pixels ≥ 249 or ≤ 6 "
                 + ("excluded from the means (column masked)" if c.get("mask") == "exclude" else "kept in the means"))
    parts.append(f"metrics: hdrjax.evaluation.metrics.compute_all, normalization {protocol.get('normalization')}"
                 + (", CRF correction (Hanji et al. 2022)" if c.get("crf_correction") else ""))
    ck = protocol.get("checkpoint")
    if ck:
        parts.append(f"checkpoint {ck.get('path')} (step {ck.get('step')}, stage {ck.get('stage')}, output after {ck.get('output_stage')})")
    parts.append(f"{protocol.get('examples', 0)} test patches, {protocol.get('samples', 0)} samples per method; "
                 "values are mean ± sample std over samples")
    return "; ".join(parts) + "."


def summary_markdown(result: EvalResult) -> str:
    """The summary as markdown: the protocol, an overall table and a per-exposure table."""
    metrics = result.metric_names
    head = "| method | n | masked | " + " | ".join(metrics) + " |"
    rule = "|---|---:|---:|" + "---:|" * len(metrics)
    lines = ["# Evaluation summary", "", "Protocol: " + protocol_text(result.protocol), ""]
    if result.skipped:
        lines += [f"Skipped inputs ({len(result.skipped)}): " + "; ".join(str(s) for s in result.skipped), ""]
    lines += ["## Overall", "", head, rule]
    for row in result.summary:
        if row["exposure"] == "all":
            lines.append(f"| {row['method']} | {row['n']} | {row['masked']} | "
                         + " | ".join(_pm(row, m, _digits(m)) for m in metrics) + " |")
    per_exp = [r for r in result.summary if r["exposure"] != "all"]
    if per_exp:
        lines += ["", "## Per exposure (stops)", "",
                  "| method | exposure | n | masked | " + " | ".join(metrics) + " |",
                  "|---|---:|---:|---:|" + "---:|" * len(metrics)]
        for row in per_exp:
            lines.append(f"| {row['method']} | {row['exposure']} | {row['n']} | {row['masked']} | "
                         + " | ".join(_pm(row, m, _digits(m)) for m in metrics) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(result: EvalResult, workdir) -> dict[str, pathlib.Path]:
    """Write per_image.csv, summary.csv, summary.md and protocol.json atomically into `workdir`,
    and with an error budget (`result.budget`) bands.csv, gaps.csv, speckle.csv and curves.csv."""
    from hdrjax.io import atomic_write

    workdir = pathlib.Path(workdir).expanduser()
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EvalError(f"{workdir}: cannot create the output folder ({e.strerror or e})") from None
    texts = {
        "per_image.csv": per_image_csv(result),
        "summary.csv": summary_csv(result),
        "summary.md": summary_markdown(result),
        "protocol.json": json.dumps(result.protocol, indent=2, default=str) + "\n",
    }
    if result.budget is not None:
        texts.update({name: _csv_text(fields, result.budget[key]) for name, (key, fields) in BUDGET_FILES.items()})
    paths = {}
    for name, text in texts.items():
        path = workdir / name
        with atomic_write(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        paths[name] = path
    return paths
