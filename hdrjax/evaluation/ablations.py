"""The ablation study of the paper: the model, each stage swapped out, the baselines, and figures.

`run_ablations` measures everything with this package's evaluation (same protocol and code
path as `python -m hdrjax.evaluate`) and writes, in its workdir, the evaluation's files plus:

* `ablations.md`: the overall table of the model and its ablations, with the change of each
  metric against the full model (the ablation table), then the baselines;
* `metric_per_exposure_<metric>.png`: mean metric per exposure, one line per method;
* `inverse_crfs.png`: estimated vs true inverse CRF for a few test curves (the model, its
  g0 ablation, and the baselines that have a curve);
* `comparison.png`: tone-mapped visual comparison — input JPEG, every method, ground truth —
  all exposed with the ground truth's Reinhard exposure so brightness differences show.

Its command line is `python -m experiments.paper.ablations`, its notebook
experiments/paper/ablations.ipynb. `make_smoke_checkpoint` and `write_test_images` give a freshly
initialised checkpoint and tiny HDR images for a CPU run in minutes (numbers from such a
checkpoint are meaningless, only the pipeline is exercised).
"""
from __future__ import annotations

import pathlib
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from hdrjax import tonemap
from hdrjax.evaluation.charts import PALETTE, font, hstack, line_plot
from hdrjax.evaluation.loop import CURVE_METRIC, EvalResult, evaluate
from hdrjax.evaluation.methods import ABLATIONS, MODEL, build_methods, load_checkpoint, parse_methods
from hdrjax.evaluation.protocol import EvalConfig, load_test_bank, open_source
from hdrjax.evaluation.report import protocol_text, write_outputs
from hdrjax.io import atomic_path, atomic_write
from hdrjax.models import build

PLOT_METRICS = ("pu21_psnr", "tone_psnr")
DEFAULT_METHODS = "model,ablations,baselines,oracles"


# ----------------------------------------------------------------------------- smoke inputs


def make_smoke_checkpoint(path, *, seed: int = 0, stage: str = "joint") -> pathlib.Path:
    """Save random SingleHDR variables (configs/<stage>.py:smoke) as a checkpoint at `path`.

    `build.random_variables` fills the model's tree without compiling an initialiser, so the
    notebook's CPU demo starts in seconds."""
    from hdrjax import configs
    from hdrjax.weights import checkpoints

    config = configs.get_config(stage, "smoke")
    variables = build.random_variables(build.build_model(config), seed=seed)
    path = pathlib.Path(path)
    checkpoints.save_variables(path, variables, config)
    return path


def write_test_images(folder, *, n: int = 2, size=(40, 56), seed: int = 0) -> list[pathlib.Path]:
    """n small HDR scenes (smooth shading + one bright light ~20× the mean) as .exr files."""
    from hdrjax.io import write_image

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    paths = []
    for i in range(n):
        phase = rng.uniform(0, 2 * np.pi, 3).astype(np.float32)
        base = 0.25 + 0.2 * np.sin(xx[..., None] / 5.0 + phase) * np.cos(yy[..., None] / 7.0)
        cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
        light = 20.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (0.01 * h * w))[..., None]
        img = np.maximum(base + light * np.float32([1.0, 0.9, 0.7]), 0.0).astype(np.float32)
        paths.append(folder / f"scene{i}.exr")
        write_image(paths[-1], img)
    return paths


# ----------------------------------------------------------------------------- figures


def save_png(image: Image.Image, path) -> pathlib.Path:
    """Write a PNG atomically (temporary file + rename)."""
    path = pathlib.Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path


def metric_per_exposure(result: EvalResult, metric: str) -> dict[str, tuple[list[float], list[float]]]:
    """{method: (stops, mean metric)} from the summary (NaN where every sample was masked)."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    for row in result.summary:
        if row["exposure"] == "all":
            continue
        xs, ys = out.setdefault(row["method"], ([], []))
        v = row.get(f"{metric}_mean")
        xs.append(float(row["exposure"]))
        ys.append(float("nan") if v is None else float(v))
    return out


def plot_metric_per_exposure(result: EvalResult, metric: str, path) -> pathlib.Path:
    """PNG of the mean `metric` against exposure (stops), one line per method."""
    img = line_plot(metric_per_exposure(result, metric), title=f"{metric} per exposure (mask-kept samples)",
                    xlabel="exposure (stops, t = 2^s)", ylabel=metric, size=(760, 440))
    return save_png(img, path)


def plot_inverse_crfs(kept: Sequence[dict], path, *, max_curves: int = 3) -> pathlib.Path | None:
    """PNG with one panel per test CRF: the true inverse CRF and every method's estimate."""
    panels, seen = [], set()
    for item in kept:
        crf = item["meta"]["crf"]
        if crf in seen or item.get("true_inverse_crf") is None or not item["curves"]:
            continue
        seen.add(crf)
        grid = np.linspace(0.0, 1.0, len(item["true_inverse_crf"]))
        series = {"true": (grid, item["true_inverse_crf"])}
        styles = {"true": {"color": (0, 0, 0), "width": 3, "marker": False}}
        for k, (name, curve) in enumerate(item["curves"].items()):
            if name == "true_crf":
                continue
            series[name] = (grid, curve)
            styles[name] = {"color": PALETTE[1 + k % (len(PALETTE) - 1)], "marker": False}
        panels.append(line_plot(series, title=f"{crf} ({item['meta']['image']}, {item['meta']['stops']:+g} stops)",
                                xlabel="LDR value", ylabel="linear value", size=(460, 420), styles=styles,
                                xlim=(0.0, 1.0), ylim=(0.0, 1.0)))
        if len(panels) >= max_curves:
            break
    if not panels:
        return None
    return save_png(hstack(panels), path)


def _tone_map(hdr: np.ndarray, log_average: float) -> np.ndarray:
    """uint8 sRGB of Reinhard (key 0.18) with a fixed log-average (the ground truth's)."""
    display = tonemap.reinhard(np.asarray(hdr, np.float32), key=tonemap.PREVIEW_KEY,
                               log_average=np.float32(log_average))
    return tonemap.to_srgb_uint8(display)


def comparison_grid(kept: Sequence[dict], path, *, max_rows: int = 4, min_tile: int = 160) -> pathlib.Path | None:
    """PNG grid: one row per kept sample, columns input JPEG | each method | ground truth.

    HDR images share the ground truth's Reinhard exposure, so a method that is too dark or too
    bright looks it; tiles smaller than `min_tile` are enlarged with nearest neighbour.
    """
    rows = [k for k in kept if k["outputs"]][:max_rows]
    if not rows:
        return None
    label_font = font(12)
    names = ["input (JPEG)"] + list(rows[0]["outputs"]) + ["ground truth"]
    h, w = rows[0]["gt"].shape[:2]
    scale = max(1, int(np.ceil(min_tile / max(h, w))))
    tw, th = w * scale, h * scale
    label_h, row_label_w, gap = 18, 150, 4
    grid = Image.new("RGB", (row_label_w + len(names) * (tw + gap), label_h + len(rows) * (th + gap)), "white")
    d = ImageDraw.Draw(grid)
    for j, name in enumerate(names):
        d.text((row_label_w + j * (tw + gap) + 2, 2), name[: max(4, tw // 7)], fill="black", font=label_font)
    for i, item in enumerate(rows):
        m = item["meta"]
        y = label_h + i * (th + gap)
        text = f"{m['image']}\n{m['crf']}" + (f"\n{m['stops']:+g} stops" if m.get("stops") is not None else "")
        d.multiline_text((2, y + 2), text, fill="black", font=label_font)
        la = float(tonemap.log_average_luminance(np.asarray(item["gt"], np.float32)))
        tiles = [np.round(np.clip(item["ldr"], 0, 1) * 255).astype(np.uint8)]
        tiles += [_tone_map(item["outputs"][n], la) for n in names[1:-1]]
        tiles.append(_tone_map(item["gt"], la))
        for j, t in enumerate(tiles):
            tile = Image.fromarray(t).resize((tw, th), Image.NEAREST)
            grid.paste(tile, (row_label_w + j * (tw + gap), y))
    return save_png(grid, path)


def ablation_markdown(result: EvalResult) -> str:
    """The ablation table: overall means of model and ablations with Δ vs the model, then the rest."""
    overall = {r["method"]: r for r in result.summary if r["exposure"] == "all"}
    metrics = list(result.metric_names)
    lines = ["# Ablations", "", "Protocol: " + protocol_text(result.protocol), "",
             "| method | n | " + " | ".join(metrics) + " |", "|---|---:|" + "---:|" * len(metrics)]
    base = overall.get(MODEL)
    for name, row in overall.items():
        cells = []
        for m in metrics:
            v = row.get(f"{m}_mean")
            if v is None:
                cells.append("–")
                continue
            digits = 4 if ("ssim" in m or m == CURVE_METRIC) else 2
            cell = f"{v:.{digits}f}"
            b = base.get(f"{m}_mean") if base is not None and name != MODEL else None
            if b is not None and name in ABLATIONS:
                cell += f" ({v - b:+.{digits}f})"
            cells.append(cell)
        lines.append(f"| {name} | {row['n']} | " + " | ".join(cells) + " |")
    lines += ["", "Ablations show (Δ vs model). Lower is better only for inverse_crf_rmse."]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- the run


def figure_selector(bank, *, n_crfs: int = 3, stops: Sequence[float] = (0.0, 2.0)):
    """A `keep` predicate for `evaluate`: the first image's samples at `stops` for the first CRFs."""
    wanted = set(bank.names[:n_crfs]) if bank is not None else None
    state = {"image": None}

    def keep(meta: dict) -> bool:
        if state["image"] is None:
            state["image"] = meta["image"]
        if meta["image"] != state["image"]:
            return False
        if wanted is None:  # real pairs: every crop of the first image
            return True
        return meta["crf"] in wanted and meta["stops"] in stops

    return keep


def run_ablations(source: str, workdir, *, checkpoint: str | None = None, crf: str = "family",
                  methods: str | None = None, config: EvalConfig | None = None, limit: int | None = None,
                  max_crfs: int | None = None, figure_crfs: int = 3, figure_stops=(0.0, 2.0)) -> dict:
    """Evaluate model + ablations + baselines on `source` and write tables and figures to `workdir`.

    Returns {"result": EvalResult, "paths": {name: path}}. Without a checkpoint only the
    baselines (and oracle) run. Exposures, JPEG quality etc. come from `config`.
    """
    from hdrjax import predict
    from hdrjax.weights import loading

    config = config or EvalConfig()
    workdir = pathlib.Path(workdir)
    kind, examples = open_source(source, config)
    protocol = {"source": source, "command": "hdrjax.evaluation.ablations.run_ablations"}
    bank = None
    if kind == "synthetic":
        bank = load_test_bank(crf, max_crfs)
        protocol["crf_spec"] = f"{crf}, test split" + (f", first {len(bank)}" if max_crfs else "")
    model = variables = stages = None
    joint = True
    if checkpoint:
        model, variables, train_config, step, _, warning = load_checkpoint(checkpoint)
        stages = loading.stages_for_checkpoint(train_config)
        joint = "refinement" in stages
        protocol["checkpoint"] = {"path": str(checkpoint), "step": step, "stage": train_config.get("stage"),
                                  "output_stage": stages[-1], "warning": warning}
    names = parse_methods(methods or (DEFAULT_METHODS if model is not None else "baselines,oracles"),
                          have_model=model is not None, joint=joint)
    built = build_methods(names, model=model, variables=variables, stages=stages,
                          predict_config=predict.PredictConfig(engine="tiles", batch_size=config.batch_size), crf=crf)
    if kind == "real":
        built = [m for m in built if not m.synthetic_only]
    result = evaluate(examples, built, config, bank=bank, limit=limit, protocol=protocol,
                      keep=figure_selector(bank, n_crfs=figure_crfs, stops=figure_stops))
    paths = dict(write_outputs(result, workdir))
    md = workdir / "ablations.md"
    with atomic_write(md, "w", encoding="utf-8") as f:
        f.write(ablation_markdown(result))
    paths["ablations.md"] = md
    if kind == "synthetic":
        for metric in PLOT_METRICS:
            if metric in result.metric_names:
                paths[f"metric_per_exposure_{metric}.png"] = plot_metric_per_exposure(
                    result, metric, workdir / f"metric_per_exposure_{metric}.png")
        p = plot_inverse_crfs(result.kept, workdir / "inverse_crfs.png", max_curves=figure_crfs)
        if p is not None:
            paths["inverse_crfs.png"] = p
    p = comparison_grid(result.kept, workdir / "comparison.png")
    if p is not None:
        paths["comparison.png"] = p
    return {"result": result, "paths": paths}
