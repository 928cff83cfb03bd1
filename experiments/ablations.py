"""Reproduce the ablation table: the model, each stage swapped out, the baselines — plus figures.

    python experiments/ablations.py ../shared/data/real_hdr --checkpoint runs/joint \
        --workdir results/ablations --crf dorf:../shared/data/crf/dorf_201.npz

Everything is measured by `hdrjax.evaluation` (same protocol, same code path as
`python -m hdrjax.evaluate`); this script adds, in `--workdir`:

* `ablations.md`: the overall table of the model and its ablations, with the change of each
  metric against the full model (the ablation table), then the baselines;
* `metric_per_exposure_<metric>.png`: mean metric per exposure, one line per method;
* `inverse_crfs.png`: estimated vs true inverse CRF for a few test curves (the model, its
  g0 ablation, and the baselines that have a curve);
* `comparison.png`: tone-mapped visual comparison — input JPEG, every method, ground truth —
  all exposed with the ground truth's Reinhard exposure so brightness differences show.

matplotlib is not a dependency: the plots are drawn with Pillow (`line_plot`). Every function
is importable (the notebook `ablations.ipynb` calls them); `make_smoke_checkpoint` and
`write_test_images` give a freshly initialised checkpoint and tiny HDR images for a CPU run in
minutes (numbers from such a checkpoint are meaningless, only the pipeline is exercised).
"""
from __future__ import annotations

import argparse
import logging
import pathlib
import sys
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(ROOT))

from hdrjax import cli  # noqa: E402
from hdrjax.evaluation.loop import CURVE_METRIC, EvalResult, evaluate  # noqa: E402
from hdrjax.evaluation.methods import ABLATIONS, MODEL, build_methods, load_checkpoint, parse_methods  # noqa: E402
from hdrjax.evaluation.protocol import (EXPOSURE_STOPS, JPEG_QUALITY, RESOLUTION, EvalConfig, EvalError,  # noqa: E402
                                        load_test_bank, open_source, parse_stops)
from hdrjax.evaluation.report import protocol_text, write_outputs  # noqa: E402
from hdrjax.models import build  # noqa: E402
from hdrjax import tonemap  # noqa: E402

# Under "hdrjax" so that hdrjax.cli.configure_logging prints its lines (one style for every CLI).
logger = logging.getLogger("hdrjax.ablations")

PLOT_METRICS = ("pu21_psnr", "tone_psnr")
DEFAULT_METHODS = "model,ablations,baselines,oracles"
# Distinct colours (Okabe–Ito, colour-blind safe) then greys.
PALETTE = ((0, 0, 0), (230, 159, 0), (86, 180, 233), (0, 158, 115), (213, 94, 0), (0, 114, 178),
           (204, 121, 167), (240, 228, 66), (120, 120, 120), (170, 170, 170), (90, 60, 30), (60, 90, 160))


# ----------------------------------------------------------------------------- smoke inputs


def smoke_config(variant: str = "smoke", stage: str = "joint"):
    """configs/<stage>.py's config with `variant`."""
    from hdrjax import configs

    return configs.get_config(stage, variant)


def make_smoke_checkpoint(path, *, seed: int = 0, stage: str = "joint") -> pathlib.Path:
    """Save freshly initialised SingleHDR variables (smoke config) as a checkpoint at `path`."""
    import jax

    from hdrjax.weights import checkpoints

    config = smoke_config(stage=stage)
    model = build.build_model(config)
    variables = build.init_variables(model, jax.random.key(seed))
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


# ----------------------------------------------------------------------------- drawing


def _font(size: int = 12):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not np.isfinite(lo) or not np.isfinite(hi):
        return []
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, n - 1)
    mag = 10 ** np.floor(np.log10(raw))
    step = min((s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw), default=raw)
    start = np.ceil(lo / step - 1e-9) * step
    return [float(v) for v in np.arange(start, hi + step * 1e-6, step)]


def _fmt(v: float) -> str:
    v = 0.0 if abs(v) < 1e-12 else v  # no "-0" tick
    return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.2e}"


def line_plot(series: dict[str, tuple[Sequence[float], Sequence[float]]], *, title: str = "", xlabel: str = "",
              ylabel: str = "", size=(640, 420), styles: dict[str, dict] | None = None,
              xlim=None, ylim=None, legend: bool = True) -> Image.Image:
    """A simple line chart with Pillow: {name: (xs, ys)} -> RGB image (axes, ticks, legend).

    Points with non-finite y are skipped (a gap in the line). `styles[name]` may set "color"
    (RGB tuple), "width" and "marker" (bool).
    """
    styles = styles or {}
    w, h = size
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    font, small = _font(13), _font(12)
    xs_all = [float(x) for xs, _ in series.values() for x in xs]
    ys_all = [float(y) for _, ys in series.values() for y in ys if np.isfinite(y)]
    x0, x1 = xlim or ((min(xs_all), max(xs_all)) if xs_all else (0.0, 1.0))
    y0, y1 = ylim or ((min(ys_all), max(ys_all)) if ys_all else (0.0, 1.0))
    if x1 <= x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    if y1 <= y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    if ylim is None:  # a little head room
        pad = 0.05 * (y1 - y0)
        y0, y1 = y0 - pad, y1 + pad
    left, right, top, bottom = 62, 12, 30 if title else 12, 44
    legend_w = 0
    if legend and series:
        legend_w = max(d.textbbox((0, 0), n, font=small)[2] for n in series) + 34
        right += legend_w
    pw, ph = w - left - right, h - top - bottom

    def px(x):
        return left + (x - x0) / (x1 - x0) * pw

    def py(y):
        return top + (1.0 - (y - y0) / (y1 - y0)) * ph

    if title:
        tw = d.textbbox((0, 0), title, font=font)[2]
        d.text((left + (pw - tw) / 2, 8), title, fill="black", font=font)
    for t in _nice_ticks(y0, y1):
        d.line([(left, py(t)), (left + pw, py(t))], fill=(230, 230, 230))
        label = _fmt(t)
        lw = d.textbbox((0, 0), label, font=small)[2]
        d.text((left - lw - 6, py(t) - 6), label, fill="black", font=small)
    for t in _nice_ticks(x0, x1):
        d.line([(px(t), top + ph), (px(t), top + ph + 4)], fill="black")
        label = _fmt(t)
        lw = d.textbbox((0, 0), label, font=small)[2]
        d.text((px(t) - lw / 2, top + ph + 6), label, fill="black", font=small)
    d.rectangle([left, top, left + pw, top + ph], outline="black")
    if xlabel:
        tw = d.textbbox((0, 0), xlabel, font=small)[2]
        d.text((left + (pw - tw) / 2, h - 18), xlabel, fill="black", font=small)
    if ylabel:
        label = Image.new("RGB", (d.textbbox((0, 0), ylabel, font=small)[2] + 4, 14), "white")
        ImageDraw.Draw(label).text((2, 0), ylabel, fill="black", font=small)
        label = label.rotate(90, expand=True)
        img.paste(label, (4, int(top + (ph - label.height) / 2)))
    for k, (name, (xs, ys)) in enumerate(series.items()):
        st = styles.get(name, {})
        color = tuple(st.get("color", PALETTE[k % len(PALETTE)]))
        width = int(st.get("width", 2))
        pts = [(px(float(x)), py(float(y))) for x, y in zip(xs, ys) if np.isfinite(y)]
        # Split at gaps (non-finite y) so a missing exposure is not bridged.
        run: list[tuple[float, float]] = []
        for x, y in zip(xs, ys):
            if np.isfinite(y):
                run.append((px(float(x)), py(float(y))))
            else:
                if len(run) > 1:
                    d.line(run, fill=color, width=width)
                run = []
        if len(run) > 1:
            d.line(run, fill=color, width=width)
        if st.get("marker", len(pts) <= 16):
            for x, y in pts:
                d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=color)
        if legend:
            ly = top + 6 + 16 * k
            lx = w - legend_w + 4
            d.line([(lx, ly + 6), (lx + 22, ly + 6)], fill=color, width=width)
            d.text((lx + 27, ly), name, fill="black", font=small)
    return img


def hstack(images: Sequence[Image.Image], gap: int = 8) -> Image.Image:
    """Images side by side on white (top-aligned)."""
    w = sum(i.width for i in images) + gap * (len(images) - 1)
    h = max(i.height for i in images)
    out = Image.new("RGB", (w, h), "white")
    x = 0
    for i in images:
        out.paste(i, (x, 0))
        x += i.width + gap
    return out


def vstack(images: Sequence[Image.Image], gap: int = 8) -> Image.Image:
    """Images one below the other on white (left-aligned)."""
    w = max(i.width for i in images)
    h = sum(i.height for i in images) + gap * (len(images) - 1)
    out = Image.new("RGB", (w, h), "white")
    y = 0
    for i in images:
        out.paste(i, (0, y))
        y += i.height + gap
    return out


# ----------------------------------------------------------------------------- figures


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
    path = pathlib.Path(path)
    img.save(path)
    return path


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
    path = pathlib.Path(path)
    hstack(panels).save(path)
    return path


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
    font = _font(12)
    names = ["input (JPEG)"] + list(rows[0]["outputs"]) + ["ground truth"]
    h, w = rows[0]["gt"].shape[:2]
    scale = max(1, int(np.ceil(min_tile / max(h, w))))
    tw, th = w * scale, h * scale
    label_h, row_label_w, gap = 18, 150, 4
    grid = Image.new("RGB", (row_label_w + len(names) * (tw + gap), label_h + len(rows) * (th + gap)), "white")
    d = ImageDraw.Draw(grid)
    for j, name in enumerate(names):
        d.text((row_label_w + j * (tw + gap) + 2, 2), name[: max(4, tw // 7)], fill="black", font=font)
    for i, item in enumerate(rows):
        m = item["meta"]
        y = label_h + i * (th + gap)
        text = f"{m['image']}\n{m['crf']}" + (f"\n{m['stops']:+g} stops" if m.get("stops") is not None else "")
        d.multiline_text((2, y + 2), text, fill="black", font=font)
        la = float(tonemap.log_average_luminance(np.asarray(item["gt"], np.float32)))
        tiles = [np.round(np.clip(item["ldr"], 0, 1) * 255).astype(np.uint8)]
        tiles += [_tone_map(item["outputs"][n], la) for n in names[1:-1]]
        tiles.append(_tone_map(item["gt"], la))
        for j, t in enumerate(tiles):
            tile = Image.fromarray(t).resize((tw, th), Image.NEAREST)
            grid.paste(tile, (row_label_w + j * (tw + gap), y))
    path = pathlib.Path(path)
    grid.save(path)
    return path


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
    protocol = {"source": source, "command": "experiments/ablations.py"}
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
    from hdrjax.io import atomic_write

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


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: see the module doc; exit 1 when inputs were skipped."""
    p = argparse.ArgumentParser(prog="experiments/ablations.py", description=__doc__.split("\n\n")[0])
    p.add_argument("source", help="as python -m hdrjax.evaluate (folder, HDR-Real folder, dataset spec)")
    p.add_argument("--workdir", required=True)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--crf", default="family")
    p.add_argument("--methods", default=None, help=f"default: {DEFAULT_METHODS} (with --checkpoint)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--max-crfs", type=int, default=None)
    p.add_argument("--resolution", type=int, default=RESOLUTION)
    p.add_argument("--exposures", default=",".join(f"{s:g}" for s in EXPOSURE_STOPS))
    p.add_argument("--jpeg-quality", type=int, default=JPEG_QUALITY)
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args(argv)
    cli.configure_logging(False)
    try:
        config = EvalConfig(resolution=args.resolution, exposure_stops=parse_stops(args.exposures),
                            jpeg_quality=args.jpeg_quality, batch_size=args.batch_size)
        out = run_ablations(args.source, args.workdir, checkpoint=args.checkpoint, crf=args.crf,
                            methods=args.methods, config=config, limit=args.limit, max_crfs=args.max_crfs)
    except EvalError as e:
        logger.error(str(e))
        return 1
    sys.stdout.write(ablation_markdown(out["result"]))
    for name, path in out["paths"].items():
        logger.info(f"wrote {path}")
    return 1 if out["result"].skipped else 0


if __name__ == "__main__":
    sys.exit(main())
