"""The metrics loop: every method on every test sample, scored by `hdrjax.evaluation.metrics`, summarised.

`evaluate` takes the examples of `protocol` (test patches, real pairs, skipped inputs) and
the `methods`, synthesises each patch's samples through the protocol's camera, runs every
method on the samples that are not masked, scores them (`hdrjax.evaluation.metrics.compute_all`, plus
`inverse_crf_rmse` for methods with a curve), and returns an `EvalResult`: per-sample rows,
`summarize`d means and standard deviations, the skipped inputs, the protocol facts and
timings. Writing the result down is `report`'s job.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Callable, Iterable, Sequence

import numpy as np

from hdrjax.evaluation import speckle
from hdrjax.evaluation.budget import ErrorBudget, band_errors
from hdrjax.evaluation.methods import Method, batch_bucket
from hdrjax.evaluation.protocol import EvalConfig, EvalError, Example, Skipped, real_samples, synthetic_samples

logger = logging.getLogger(__name__)

CURVE_METRIC = "inverse_crf_rmse"


def format_stops(s) -> str:
    """Exposure stops as the tables write them: "+1", "-3", "" for none (real pairs)."""
    return "" if s is None else f"{s:+g}"


@dataclasses.dataclass
class EvalResult:
    """Per-sample rows, the summary, skipped inputs, the protocol, and kept images/curves."""

    rows: list[dict]
    summary: list[dict]
    metric_names: tuple[str, ...]
    skipped: list[Skipped]
    protocol: dict
    kept: list[dict]
    timing: dict
    budget: dict | None = None  # {"bands", "gaps", "speckle", "curves"}: rows of budget.ErrorBudget.tables

    def scalars(self, prefix: str = "") -> dict[str, float]:
        """{"[prefix/]method/metric[/ev+1]": mean} from the summary, for TensorBoard."""
        out = {}
        for row in self.summary:
            tail = "" if row["exposure"] == "all" else f"/ev{row['exposure']}"
            for m in self.metric_names:
                v = row.get(f"{m}_mean")
                if v is not None:
                    out[f"{prefix + '/' if prefix else ''}{row['method']}/{m}{tail}"] = float(v)
        return out


def _metric_batches(pred, gt, config: EvalConfig, normalization: str, fn=None):
    """`fn` (default metrics.compute_all; same keywords) in batches padded (by repetition) to
    power-of-two sizes: few jit shapes. {name: values with a leading axis of len(pred)}."""
    from hdrjax.evaluation import metrics

    fn = metrics.compute_all if fn is None else fn
    n = len(pred)
    b = config.batch_size
    out: dict[str, list] = {}
    for start in range(0, n, b):
        p, g = pred[start:start + b], gt[start:start + b]
        k = len(p)
        size = batch_bucket(k, b)
        if k < size:
            p = np.concatenate([p, np.repeat(p[-1:], size - k, axis=0)])
            g = np.concatenate([g, np.repeat(g[-1:], size - k, axis=0)])
        values = fn(p, g, crf_correction=config.crf_correction, normalization=normalization)
        for name, v in values.items():
            out.setdefault(name, []).append(np.asarray(v, np.float64)[:k])
    return {name: np.concatenate(v) for name, v in out.items()}


def evaluate(
    examples: Iterable[Example | Skipped],
    methods: Sequence[Method],
    config: EvalConfig = EvalConfig(),
    *,
    bank=None,
    keep: Callable[[dict], bool] | None = None,
    limit: int | None = None,
    protocol: dict | None = None,
    error_budget: bool = False,
) -> EvalResult:
    """Run every method on every test sample and score it; returns rows, summary and protocol.

    `examples`: `Example`s (with `ldr` = real pairs, else synthesised with the CRFs of `bank`,
    a `CRFBank`) and `Skipped` inputs (counted). `keep(meta)` selects samples whose images and
    curves are kept in `result.kept` (figures). `limit`: stop after this many examples.
    Every method also gets the `speckle` figure (hdrjax/evaluation/speckle.py) per sample;
    `error_budget=True` fills `result.budget` (hdrjax/evaluation/budget.py).
    Library use (e.g. from training): `evaluate(patches, [model_method(model, variables)],
    EvalConfig(exposure_stops=(0.0,)), bank=test_bank).scalars("eval")`.
    """
    rows: list[dict] = []
    skipped: list[Skipped] = []
    kept: list[dict] = []
    timing: dict[str, float] = {m.name: 0.0 for m in methods}
    metric_names: tuple[str, ...] | None = None
    kinds = set()
    n_examples = 0
    budget = ErrorBudget() if error_budget else None
    for example in examples:
        if isinstance(example, Skipped):
            logger.error(f"{example} (skipped)")
            skipped.append(example)
            continue
        if isinstance(example, dict):  # an hdrjax.data.make_eval_dataset item
            example = Example(str(example["name"]), np.asarray(example["hdr"], np.float32),
                              None if example.get("ldr") is None else np.asarray(example["ldr"], np.float32))
        if limit is not None and n_examples >= limit:
            break
        n_examples += 1
        t0 = time.perf_counter()
        real = example.ldr is not None
        kinds.add("real" if real else "synthetic")
        if len(kinds) > 1:
            raise EvalError("examples mix real pairs and HDR-only images; evaluate them separately")
        if not real and bank is None:
            raise EvalError("synthetic evaluation needs a CRF bank (bank=hdrjax.camera.load_bank(spec, 'test'))")
        normalization = config.normalization_for(real)
        groups = real_samples(example, config) if real else synthetic_samples(example, bank, config)
        n_samples = n_masked = 0
        for ldr, gt, mask, meta in groups:
            n_samples += len(meta)
            n_masked += int(np.sum(mask == 0))
            run = np.nonzero((mask > 0) | (config.mask == "include"))[0]
            per_method = {}
            for method in methods:
                if method.synthetic_only and real:
                    continue
                values: dict[str, np.ndarray] = {}
                curves = None
                outputs = None
                if run.size:
                    tm = time.perf_counter()
                    outputs, curves = method.run(ldr[run], [meta[i] for i in run])
                    timing[method.name] += time.perf_counter() - tm
                    gt_run = np.ascontiguousarray(gt[run])
                    values = _metric_batches(outputs, gt_run, config, normalization)
                    if metric_names is None:
                        metric_names = tuple(values)
                    energy = _metric_batches(outputs, gt_run, config, normalization, speckle.speckle_energy)
                    speckles = speckle.speckle_ratio(energy)
                    if budget is not None:
                        bands = _metric_batches(outputs, gt_run, config, normalization, band_errors)
                        budget.add(method.name, [meta[i] for i in run], ldr[run], gt_run, curves, bands, energy)
                per_method[method.name] = (outputs, curves)
                pos = {int(i): j for j, i in enumerate(run)}
                for i, m in enumerate(meta):
                    row = {"method": method.name, "image": m["image"], "crf": m["crf"],
                           "exposure": m["exposure"], "stops": m["stops"], "jpeg_quality": m["jpeg_quality"],
                           "mask": int(mask[i] > 0)}
                    j = pos.get(i)
                    if j is not None:
                        for name, v in values.items():
                            row[name] = float(v[j])
                        if np.isfinite(speckles[j]):  # a sample without a smooth dark region has none
                            row[speckle.SPECKLE] = float(speckles[j])
                        if curves is not None and "inverse_crf" in m:
                            row[CURVE_METRIC] = float(np.sqrt(np.mean((curves[j] - m["inverse_crf"]) ** 2)))
                    rows.append(row)
            if keep is not None:
                for j, i in enumerate(run):
                    if keep(meta[i]):
                        kept.append({
                            "meta": {k: v for k, v in meta[i].items() if k != "inverse_crf"},
                            "true_inverse_crf": meta[i].get("inverse_crf"),
                            "ldr": ldr[i], "gt": gt[i],
                            "outputs": {k: o[j] for k, (o, _) in per_method.items() if o is not None},
                            "curves": {k: c[j] for k, (_, c) in per_method.items() if c is not None},
                        })
        logger.info(f"{example.name}: {n_samples} sample(s), {n_masked} masked, "
                    f"{time.perf_counter() - t0:.1f} s")
    from hdrjax.evaluation.metrics import METRIC_NAMES

    # The metrics module's order (jit returns dicts sorted by key), then any extra ones.
    found = metric_names or tuple(METRIC_NAMES)
    metric_names = tuple(m for m in METRIC_NAMES if m in found) + tuple(m for m in found if m not in METRIC_NAMES)
    if any(CURVE_METRIC in r for r in rows):
        metric_names = metric_names + (CURVE_METRIC,)
    if any(speckle.SPECKLE in r for r in rows):
        metric_names = metric_names + (speckle.SPECKLE,)
    stops = config.exposure_stops if "synthetic" in kinds else ()
    summary = summarize(rows, [m.name for m in methods], metric_names, stops)
    proto = dict(protocol or {})
    proto.update({
        "kind": "real" if "real" in kinds else "synthetic",
        "config": _config_json(config),
        "normalization": config.normalization_for("real" in kinds),
        "examples": n_examples,
        "samples": sum(1 for r in rows if r["method"] == methods[0].name) if methods else 0,
        "skipped": [str(s) for s in skipped],
        "methods": [{"name": m.name, "kind": m.kind, **({"info": m.info} if m.info else {})} for m in methods],
        "seconds": {k: round(v, 3) for k, v in timing.items()},
    })
    if bank is not None and "synthetic" in kinds:
        proto["crfs"] = list(bank.names)
    tables = budget.tables([m.name for m in methods], stops) if budget is not None else None
    return EvalResult(rows, summary, metric_names, skipped, proto, kept, timing, tables)


def _config_json(config: EvalConfig) -> dict:
    d = dataclasses.asdict(dataclasses.replace(config, camera=None))
    d["camera"] = dataclasses.asdict(config.camera_config())
    d["exposures"] = [float(2.0 ** s) for s in config.exposure_stops]
    return json.loads(json.dumps(d, default=str))


def summarize(rows: Sequence[dict], methods: Sequence[str], metric_names: Sequence[str],
              stops: Sequence[float] = ()) -> list[dict]:
    """Mean and sample std (ddof 1) of each metric per method, per exposure and overall.

    A row counts when it has metric values (mask 1, or every row with mask "include"); `n` is
    that count and `masked` the number of mask-0 samples in the group.
    """
    out = []
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        groups = [(format_stops(s), [r for r in mine if r["stops"] == s]) for s in stops] + [("all", mine)]
        for label, group in groups:
            if not group:
                continue
            scored = [r for r in group if metric_names and metric_names[0] in r]
            row = {"method": method, "exposure": label, "n": len(scored),
                   "masked": sum(1 for r in group if r["mask"] == 0)}
            for m in metric_names:
                v = np.array([r[m] for r in scored if m in r], np.float64)
                row[f"{m}_mean"] = float(np.mean(v)) if v.size else None
                row[f"{m}_std"] = float(np.std(v, ddof=1)) if v.size > 1 else None
            out.append(row)
    return out
