"""Training curves of the stage-wise chain: loss and held-out metric against images seen.

    python -m experiments.default_model.plot_curves --run dequantization=runs/default/dequantization \\
        --run linearization=runs/default/linearization --run hallucination=runs/default/hallucination \\
        --run joint=runs/default/joint --mean-curve-rmse 0.086 --out experiments/results/training-curves

Each `--run STAGE=WORKDIR` reads `WORKDIR/metrics.jsonl` (written by `hdrjax.training.loop`: one JSON
object per line, "kind" train or eval, "step", "images_seen", the scalars; a WORKDIR may also
be the .jsonl file itself).  A resumed run appends to the file, so rows are de-duplicated by
(kind, step), the last one winning; a torn last line (a run still writing) is skipped.

Writes `<out>.json`: per stage the raw training loss `train_raw` [[images_seen, loss], ...], the
same smoothed by a trailing running mean over `--smooth` rows (20) `train_smoothed`, and the
held-out evaluations `eval` [[images_seen, metric, ...], ...] with `eval_metrics` naming the
columns; and `<out>.png` (matplotlib): one row per stage, left the training loss (log scale),
right the stage's held-out metric — Dequantization psnr, Linearization curve_rmse (with a
dashed "mean curve" line at `--mean-curve-rmse`, the error of always answering the mean
training curve: `python -m hdrjax.evaluate ... --methods mean_crf`), Hallucination and joint
pu21_psnr and tone_psnr.  A stage whose metrics.jsonl is missing or empty is skipped with a
message; the exit status is 1 only when no stage could be read.
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
from typing import Sequence

from hdrjax.training.chain import STAGES  # the recipe's stages, in order

from .. import results_io

# The held-out metric(s) plotted per stage (eval rows of hdrjax.training.loop), in legend order.
STAGE_METRICS = {
    "dequantization": ("psnr",),
    "linearization": ("curve_rmse",),
    "hallucination": ("pu21_psnr", "tone_psnr"),
    "refinement": ("pu21_psnr", "tone_psnr"),
    "joint": ("pu21_psnr", "tone_psnr"),
}
METRIC_LABELS = {
    "psnr": "PSNR (dB)",
    "curve_rmse": "inverse-CRF RMSE",
    "pu21_psnr": "PU21-PSNR (dB)",
    "tone_psnr": "tone-mapped PSNR (dB)",
}
SMOOTH = 20
_ROW_KEYS = ("kind", "step", "images_seen", "time")


def _note(message: str) -> None:
    sys.stderr.write(message + "\n")


def metrics_file(workdir) -> pathlib.Path:
    """`workdir/metrics.jsonl`, or `workdir` itself when it is a .jsonl file."""
    path = pathlib.Path(workdir).expanduser()
    return path if path.suffix == ".jsonl" else path / "metrics.jsonl"


def read_metrics(path) -> tuple[list[dict], list[dict], int]:
    """(train rows, eval rows, bad lines) of one metrics.jsonl, each sorted by step, one row per step."""
    rows: dict[tuple[str, int], dict] = {}
    bad = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
                key = (str(row["kind"]), int(row["step"]))
            except (ValueError, KeyError, TypeError):
                bad += 1
                continue
            rows[key] = row  # a resumed run re-logs steps: the last one wins
    ordered = [rows[k] for k in sorted(rows, key=lambda k: k[1])]
    return ([r for r in ordered if r["kind"] == "train"], [r for r in ordered if r["kind"] == "eval"], bad)


def _finite(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def running_mean(values: Sequence[float | None], window: int = SMOOTH) -> list[float | None]:
    """Trailing mean over the last `window` finite values (None where there is none yet)."""
    out, recent = [], []
    for v in values:
        if v is not None:
            recent.append(v)
            if len(recent) > window:
                recent.pop(0)
        out.append(sum(recent) / len(recent) if recent else None)
    return out


def _x_of(rows: list[dict], use_steps: bool):
    return [int(r["step"]) if use_steps else int(r.get("images_seen") or 0) for r in rows]


def stage_curves(stage: str, workdir, *, smooth: int = SMOOTH) -> dict:
    """One stage's curves (see the module doc); raises OSError / ValueError when unreadable or empty."""
    path = metrics_file(workdir)
    train, evals, bad = read_metrics(path)
    if not train and not evals:
        raise ValueError("no train or eval rows")
    # A writer without the batch size logs images_seen 0: fall back to steps.
    use_steps = not any(int(r.get("images_seen") or 0) for r in train + evals)
    x_train = _x_of(train, use_steps)
    loss = [_finite(r.get("loss")) for r in train]
    smoothed = running_mean(loss, smooth)
    wanted = STAGE_METRICS.get(stage)
    if wanted is None:  # another stage name: every eval scalar
        wanted = tuple(k for r in evals for k in r if k not in _ROW_KEYS)
        wanted = tuple(dict.fromkeys(wanted))
    metrics = [m for m in wanted if any(m in r for r in evals)]
    return {
        "workdir": str(workdir),
        "metrics_file": str(path),
        "x": "steps" if use_steps else "images_seen",
        "bad_lines": bad,
        "smooth_window": smooth,
        "train_raw": [[x, v] for x, v in zip(x_train, loss)],
        "train_smoothed": [[x, v] for x, v in zip(x_train, smoothed)],
        "eval_metrics": metrics,
        "eval": [[x] + [_finite(r.get(m)) for m in metrics] for x, r in zip(_x_of(evals, use_steps), evals)],
    }


def collect(runs: Sequence[tuple[str, str]], *, smooth: int = SMOOTH) -> tuple[dict, dict]:
    """({stage: curves}, {stage: why skipped}) in the chain's order (unknown stages last)."""
    order = {s: i for i, s in enumerate(STAGES)}
    stages, skipped = {}, {}
    for stage, workdir in sorted(runs, key=lambda r: order.get(r[0], len(STAGES))):
        try:
            stages[stage] = stage_curves(stage, workdir, smooth=smooth)
        except FileNotFoundError:
            skipped[stage] = f"{metrics_file(workdir)}: missing"
        except (OSError, ValueError) as e:
            skipped[stage] = f"{metrics_file(workdir)}: {e}"
        else:
            if stages[stage]["bad_lines"]:
                _note(f"{stage}: skipped {stages[stage]['bad_lines']} unreadable line(s) in {metrics_file(workdir)}")
            continue
        _note(f"{stage}: skipped ({skipped[stage]})")
    return stages, skipped


def plot(stages: dict, out_png, *, mean_curve_rmse: float | None = None) -> pathlib.Path:
    """The figure: one row per stage, loss (log y) left, held-out metric right; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(stages)
    fig, axes = plt.subplots(n, 2, figsize=(11, 2.8 * n + 0.4), squeeze=False)
    for (stage, c), (ax_loss, ax_eval) in zip(stages.items(), axes):
        xlabel = "training steps" if c["x"] == "steps" else "images seen"
        raw = [(x, v) for x, v in c["train_raw"] if v is not None and v > 0]
        sm = [(x, v) for x, v in c["train_smoothed"] if v is not None and v > 0]
        if raw:
            ax_loss.plot(*zip(*raw), color="tab:blue", alpha=0.25, lw=0.8, label="raw")
            ax_loss.plot(*zip(*sm), color="tab:blue", lw=1.6, label=f"running mean ({c['smooth_window']} rows)")
            ax_loss.set_yscale("log")
            ax_loss.legend(fontsize=8, loc="upper right")
        else:
            ax_loss.text(0.5, 0.5, "no training rows", ha="center", va="center", transform=ax_loss.transAxes)
        ax_loss.set_title(f"{stage}: training loss", fontsize=10)
        ax_loss.set_xlabel(xlabel)
        ax_loss.set_ylabel("loss")
        ax_loss.grid(True, which="both", alpha=0.3)

        drawn = False
        for j, metric in enumerate(c["eval_metrics"]):
            pts = [(p[0], p[j + 1]) for p in c["eval"] if p[j + 1] is not None]
            if pts:
                ax_eval.plot(*zip(*pts), marker="o", ms=3, lw=1.4, label=metric)
                drawn = True
        if stage == "linearization" and mean_curve_rmse is not None:
            ax_eval.axhline(mean_curve_rmse, color="gray", ls="--", lw=1.2, label="mean curve")
            drawn = True
        if drawn:
            ax_eval.legend(fontsize=8)
        else:
            ax_eval.text(0.5, 0.5, "no eval rows", ha="center", va="center", transform=ax_eval.transAxes)
        metrics = c["eval_metrics"]
        ax_eval.set_title(f"{stage}: held-out {', '.join(metrics) or 'metric'}", fontsize=10)
        ax_eval.set_xlabel(xlabel)
        ax_eval.set_ylabel(METRIC_LABELS.get(metrics[0], metrics[0]) if len(metrics) == 1 else
                           ("PSNR (dB)" if all("psnr" in m for m in metrics) else "value"))
        ax_eval.grid(True, alpha=0.3)
    fig.tight_layout()
    out_png = results_io.write_image(out_png, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return out_png


def _parse_run(text: str) -> tuple[str, str]:
    stage, sep, workdir = text.partition("=")
    if not sep or not stage or not workdir:
        raise argparse.ArgumentTypeError(f"expected STAGE=WORKDIR, got {text!r}")
    return stage.strip(), workdir


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.default_model.plot_curves",
                                description="Training curves (loss, held-out metric vs images seen) per stage.")
    p.add_argument("--run", type=_parse_run, action="append", required=True, metavar="STAGE=WORKDIR",
                   help=f"a stage ({', '.join(STAGES)}) and its training workdir; repeat per stage")
    p.add_argument("--out", required=True, help="output prefix: writes OUT.json and OUT.png")
    p.add_argument("--mean-curve-rmse", type=float, default=None,
                   help="inverse-CRF RMSE of the mean training curve (evaluate's mean_crf), drawn as a dashed line")
    p.add_argument("--smooth", type=int, default=SMOOTH, help="running-mean window in rows (default %(default)s)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.smooth < 1:
        _note(f"error: --smooth must be >= 1, got {args.smooth}")
        return 2
    out = pathlib.Path(args.out).expanduser()
    if out.suffix in (".json", ".png"):
        out = out.with_suffix("")
    stages, skipped = collect(args.run, smooth=args.smooth)
    if not stages:
        _note("error: no stage could be read; nothing written")
        return 1
    record = {"stages": stages, "skipped": skipped, "mean_curve_rmse": args.mean_curve_rmse,
              "stage_metrics": {s: list(c["eval_metrics"]) for s, c in stages.items()}}
    json_path = out.with_name(out.name + ".json")
    results_io.write_json(json_path, record, indent=1)
    try:
        png = plot(stages, out.with_name(out.name + ".png"), mean_curve_rmse=args.mean_curve_rmse)
    except ImportError as e:
        _note(f"error: the figure needs matplotlib ({e}); wrote only {json_path}")
        return 1
    _note(f"wrote {json_path} and {png}" + (f"; skipped {', '.join(skipped)}" if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
