"""The benchmark's report: cross-section ratios (`summarize`) and the markdown tables
(`render_markdown`) of a result file, including the runs it holds and the retired one-off
measurements it keeps. Reads only the result dictionary: the markdown can be regenerated
from a committed JSON file (`python -m experiments.benchmark --render FILE`).
"""
from __future__ import annotations

import math
from typing import Any

from hdrjax.models import build

from . import regions
from .measure import CLIP_PERCENT, GAMMA, median

STAGES = build.NETWORKS
TRAIN_STAGES = build.TRAINING_STAGES

# The PyTorch port of the same networks (alxBO/singlehdr-service), as quoted in the issue:
# torch 2.13 CPU, 2 threads, refinement mode, random weights, on a machine like ours. Not
# measured by us. Written into every result file (its "port" record).
PORT = {
    "source": "quoted from the issue (alxBO/singlehdr-service, torch 2.13 CPU, 2 threads, "
              "refinement mode, random weights); not measured by this script",
    "seconds": {"512x512": 4.5, "1024x1024": 17.4, "1080x1920": 38.5},
    "peak_rss_gb": {"1024x1024": 4.0, "1080x1920": 7.2},
    "tflop_per_image_1024": 2.03,  # at 1088² after the port's padding
    "padded_pixels_1024": 1088 * 1088,
    "hallucination_share": 0.71,
    "matmul_peak_gflops": 200.0,  # numpy/OpenBLAS 4096² float32 on their machine
    "fraction_of_peak": 0.55,
}
# Goals from the issue.
GOAL_PEAK_FRACTION = 0.60
GOAL_SPEEDUP = 2.0
GOAL_MEMORY_FRACTION = 0.25


def summarize(results: dict) -> dict:
    """Cross-section ratios: roofline, comparison with the port, goals."""
    tasks = results["tasks"]
    peak = tasks.get("peak", {}).get("result", {})
    stages = tasks.get("stages", {}).get("result", {})
    s: dict[str, Any] = {}
    if stages:
        s["model_fraction_of_peak"] = stages["model"]["fraction_of_peak"]
        s["goal_fraction_of_peak"] = GOAL_PEAK_FRACTION
        s["slowest_stage"] = stages["slowest_stage"]
        st = stages["stages"]
        # Per-pixel FLOPs of the one-pass model, at the port's 1088² (FLOPs are linear in pixels).
        conv = sum(st[k]["flops_per_pixel"] for k in ("dequantization", "hallucination", "refinement"))
        lin_full = st.get("linearization@full", st["linearization"])["flops_per_pixel"]
        s["tflop_1088_one_pass"] = (conv + lin_full) * PORT["padded_pixels_1024"] / 1e12
        s["port_tflop_1088"] = PORT["tflop_per_image_1024"]
        s["hallucination_flop_share_1088"] = st["hallucination"]["flops_per_pixel"] / (conv + lin_full)
    # Executed FLOPs of each tiled inference run, from the per-pixel FLOPs of the stages.
    inf_rows = [e["result"] for k, e in sorted(tasks.items()) if k.startswith("inference-") and "result" in e]
    if stages and inf_rows:
        st = stages["stages"]
        for r in inf_rows:
            tile_px = r["tile_shape"][0] * r["tile_shape"][1]
            per_pixel = st["dequantization"]["flops_per_pixel"] + st["refinement"]["flops_per_pixel"]
            flops = tile_px * r["tiles"] * per_pixel
            flops += tile_px * r["hallucinated_tiles"] * st["hallucination"]["flops_per_pixel"]
            crf = r.get("crf_shape") or [min(r["height"], 512), min(r["width"], 512)]
            flops += crf[0] * crf[1] * st["linearization"]["flops_per_pixel"]
            r["executed_tflop"] = flops / 1e12
            r["executed_gflops_per_s"] = flops / r["seconds"] / 1e9
            if peak.get("peak_gflops"):
                r["executed_fraction_of_peak"] = r["executed_gflops_per_s"] / peak["peak_gflops"]
    # Against the port (its numbers are quoted; ours measured here).
    comp = {}
    our_peak = peak.get("peak_gflops")
    for r in inf_rows:
        key = f"{r['height']}x{r['width']}"
        if key in PORT["seconds"]:
            row = {"port_s": PORT["seconds"][key], "ours_s": r["seconds"],
                   "speedup": PORT["seconds"][key] / r["seconds"]}
            if our_peak:
                # The port's time scaled to this machine's measured peak (theirs: 200 GFLOP/s).
                row["speedup_peak_normalized"] = row["speedup"] * PORT["matmul_peak_gflops"] / our_peak
            if key in PORT["peak_rss_gb"]:
                row["port_rss_gb"] = PORT["peak_rss_gb"][key]
                row["ours_rss_gb"] = r["peak_rss_bytes"] / 1e9
                row["memory_fraction"] = row["ours_rss_gb"] / row["port_rss_gb"]
            comp[key] = row
    s["vs_port"] = comp
    if any(e.get("task") == "regions" for e in tasks.values()):
        s["regions"] = regions.summary(tasks)
    photos = tasks.get("photos", {}).get("result", {}).get("photos", [])
    if photos:
        for p in photos:
            p["port_estimate_s"] = port_seconds(p["height"] * p["width"])
            p["speedup_vs_port"] = p["port_estimate_s"] / p["skip"]["seconds"]
            if our_peak:
                p["speedup_vs_port_peak_normalized"] = p["speedup_vs_port"] * PORT["matmul_peak_gflops"] / our_peak
        s["photos_median_speedup_vs_port"] = median([p["speedup_vs_port"] for p in photos])
        s["photos_median_skip_speedup"] = median([p["speedup_skip_vs_full"] for p in photos])
        s["photos_mean_skipped_fraction"] = sum(p["skip"]["skipped_fraction"] for p in photos) / len(photos)
    return s


def port_seconds(pixels: int) -> float:
    """The port's time for an image of `pixels`, interpolated linearly in pixel count from its quoted times."""
    pts = sorted((int(k.split("x")[0]) * int(k.split("x")[1]), v) for k, v in PORT["seconds"].items())
    (p0, t0), (p1, t1) = (pts[0], pts[1]) if pixels <= pts[1][0] else (pts[1], pts[2])
    return t0 + (t1 - t0) * (pixels - p0) / (p1 - p0)


# ============================================================================ markdown


def _fmt(x, digits=2, unit=""):
    if x is None:
        return "—"
    if isinstance(x, float) and not math.isfinite(x):
        return "—"
    if isinstance(x, (int, float)):
        if abs(x) >= 100:
            return f"{x:,.0f}{unit}"
        return f"{x:.{digits}f}{unit}"
    return str(x)


def _gb(b):
    return None if b is None else b / 1e9


def _kernel_grad_cell(x: dict | None) -> str:
    if not x:
        return "—"
    if "skipped" in x:
        return x["skipped"]
    return f"{_fmt(x['seconds_per_step'])} ({_fmt(x['default_over_xla'])})"


def _row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def _table_head(heading: str, columns: tuple[str, ...]) -> list[str]:
    """A section heading, a blank line, and the header and separator rows of its table."""
    return [heading, "", _row(columns), _row(["---"] * len(columns))]


def _task_table(title: str, columns: tuple[str, ...], entries: list[dict], cells) -> list[str]:
    """A '## title' section with one table row per task entry, then a blank line.

    `cells(result)` gives the cells of a task that ran; a task that raised gets its key and the
    start of its error, the rest of its row empty (so the table keeps its shape).
    """
    L = _table_head(f"## {title}", columns)
    for e in entries:
        if "result" in e:
            L.append(_row(cells(e["result"])))
        else:
            L.append(_row([e["key"], f"failed: {e.get('error', '')[:80]}"]) + "|" * (len(columns) - 2))
    return L + [""]


INFERENCE_COLUMNS = (
    "image", "runs", "median s", "without refinement s", "compile s", "tiles (hallucinated)",
    "computed px / image px", "executed GFLOP/s (× peak)", "peak RSS GB", "device peak GB", "port s (quoted)",
    "port RSS GB (quoted)")


def _inference_cells(r: dict) -> list[str]:
    """One image size of the tiled-inference task, beside the port's quoted numbers for that size."""
    key = f"{r['height']}x{r['width']}"
    device_peak = (r.get("device_memory") or {}).get("peak_bytes_in_use")
    ex = r.get("executed_gflops_per_s")
    return [f"{r['width']}×{r['height']} ({r['megapixels']:.1f} MP)", str(r["runs"]), _fmt(r["seconds"]),
            _fmt(r["seconds_without_refinement"]), _fmt(r["compile_s"], 1),
            f"{r['tiles']} ({r['hallucinated_tiles']})", _fmt(r["computed_pixel_ratio"]),
            f"{_fmt(ex, 1)} ({_fmt(r.get('executed_fraction_of_peak'), 2)})" if ex else "—",
            _fmt(_gb(r["peak_rss_bytes"])), _fmt(_gb(device_peak)), _fmt(PORT["seconds"].get(key)),
            _fmt(PORT["peak_rss_gb"].get(key), 1)]


TRAINING_COLUMNS = (
    "stage", "batch × patch", "s/step", "images/s", "TFLOP/step", "GFLOP/s (× peak)", "synthesis share", "compile s",
    "XLA memory GB", "largest batch (est.)", "tried", "with XLA's conv kernel grad: s/step (ours ÷ it)")


def _training_cells(r: dict) -> list[str]:
    """One stage's training step: time, throughput, memory and the largest batch that fits."""
    lb = r["largest_batch"]
    if lb.get("tried_ok"):
        tried = f"{lb['tried_batch']}: {_fmt(lb['tried_images_per_s'])} img/s"
    elif "tried_ok" in lb:
        tried = f"{lb['tried_batch']}: failed ({lb.get('tried_error', '')[:40]})"
    else:
        tried = str(lb.get("tried", "—"))
    return [r["stage"], f"{r['batch']} × {r['patch']}²", _fmt(r["seconds_per_step"]), _fmt(r["images_per_s"]),
            _fmt(r["flops"] / 1e12, 3), f"{_fmt(r['gflops_achieved'], 1)} ({_fmt(r['fraction_of_peak'])})",
            f"{_fmt(100 * r['synthesis']['share_of_step'], 1)} %", _fmt(r["compile_s"], 1),
            _fmt(_gb((r["memory"] or {}).get("total_bytes"))), str(lb.get("estimated_batch", "—")), tried,
            _kernel_grad_cell(r.get("xla_kernel_grad"))]


def knob_rows(name: str, k: dict) -> list[tuple[str, ...]]:
    """Table cells (knob, measured on, effect, keep?) of one knob's recorded result."""
    if "error" in k:
        return [(name, f"failed: {k['error'][:100]}", "", "")]
    if name == "bf16":
        per = ", ".join(f"{s[:3]} {_fmt(v['ratio'])}" for s, v in k["stages"].items())
        err = max(v["relative_l1_difference"] for v in k["stages"].values())
        return [("bf16 compute, f32 params", f"forward of a {k['shape'][0]}² tile",
                 f"time × {_fmt(k['ratio'])} ({per}); output rel. L1 diff ≤ {_fmt(err, 4)}",
                 "yes" if k["keep"] else "no")]
    if name == "remat":
        return [(f"remat `{n}`", f"{k['network']} fwd+bwd (L1 loss), {k['batch']} × {k['patch']}²",
                 f"time × {_fmt(v['time_ratio'])}, XLA temp memory × {_fmt(v.get('temp_memory_ratio'))}",
                 "for memory" if (v.get("temp_memory_ratio") or 1) < 0.8 else "no")
                for n, v in k["variants"].items() if n != "none"]
    if name == "donation":
        return [("donated train state", f"{k['stage']} step, {k['batch']} × {k['patch']}²",
                 f"time × {_fmt(k['time_ratio'])}, XLA memory × {_fmt(k.get('memory_ratio'))}",
                 "yes (train.jit_train_step)")]
    if name == "valid_conv":
        c, h = k["conv"], k["hallucination_net"]
        return [("up-block conv as padded conv + crop instead of reflect pad + VALID",
                 f"one {c['input'][3]}→{c['out_channels']} up-block conv at {2 * c['input'][1]}²; "
                 f"Hallucination-Net forward at {h['input'][1]}²",
                 f"conv time × {_fmt(c['ratio'])}, network time × {_fmt(h['ratio'])}; max abs diff "
                 f"{_fmt(max(c['max_abs_diff'], h['max_abs_diff']), 6)}",
                 "yes (hallucination.py)" if h["ratio"] < 0.95 else "no")]
    if name == "conv_grad":
        v = k["variants"]
        return [("(evidence) XLA's own weight-gradient conv", f"3×3 64→64 conv, {k['shape'][0]} × {k['shape'][1]}²",
                 f"kernel-grad conv × {_fmt(v['kernel_grad']['ratio_to_forward'])} the forward's time, input-grad × "
                 f"{_fmt(v['input_grad']['ratio_to_forward'])} (same FLOPs each)",
                 "per-tap matmuls on CPU (hdrjax/models/conv.py)")]
    if name == "layout":
        return [("NCHW instead of NHWC", f"one 3×3 64→64 conv at {k['shape'][1]}²",
                 f"time × {_fmt(k['ratio_nchw_over_nhwc'])}",
                 "NHWC (ours)" if k["ratio_nchw_over_nhwc"] >= 1 else "NCHW would win")]
    if name == "tiles":
        b = k["batching"]
        out = [("3 tiles per call (fused tiles), tiles engine",
                f"{b['image'][1]}×{b['image'][0]}, {b['tile']}² tiles, {'→'.join(x[:3] for x in b['stages'])}",
                f"time × {_fmt(b['ratio'])}", "yes" if b["ratio"] < 0.95 else "no")]
        for n, v in k.get("tile_size", {}).get("variants", {}).items():
            out.append((n.replace("_", " "), f"{k['tile_size']['image'][0]}², "
                        f"{'→'.join(x[:3] for x in k['tile_size']['stages'])}",
                        f"time × {_fmt(v['ratio'])}, computed px × {_fmt(v['computed_pixel_ratio'])} of the image", ""))
        return out
    return [(name, "", "(no formatter for this knob)", "")]


def runs_of(results: dict) -> dict[str, dict]:
    """Every run whose results the file holds, by date: the recorded earlier runs and this one."""
    runs = dict(results.get("runs") or {})
    runs[results["created"]] = {k: results.get(k) for k in (
        "command", "quick", "extended", "device", "gpu", "environment", "load_average", "contended", "wall_s")}
    return runs


def retired_markdown(retired: dict, runs: dict) -> list[str]:
    """The retired one-off measurements: what each found, from which run, and where its code is."""
    L = ["## Retired one-off measurements", "",
         retired["note"], "",
         "| knob | measured on | effect | decision | run (recorded in) |",
         "| --- | --- | --- | --- | --- |"]
    for name, entry in retired["results"].items():
        run = runs.get(entry["from_run"], {})
        tag = f"{entry['from_run']}{' (contended)' if run.get('contended') else ''} ({entry['recorded_in']})"
        for cells in knob_rows(name, entry["result"]):
            L.append(_row((*cells, tag)))
    L.append("")
    return L


def runs_markdown(results: dict, runs: dict[str, dict]) -> list[str]:
    """The runs a result file holds: when, what command, on which machine, under what load."""
    origin: dict[str, list[str]] = {}
    for key, e in results["tasks"].items():
        origin.setdefault(e.get("from_run") or results["created"], []).append(key)
    for name, e in ((results.get("retired") or {}).get("results") or {}).items():
        origin.setdefault(e["from_run"], []).append(f"retired {name}")
    L = ["| run (UTC) | command | set | machine | load average start → end | results |",
         "| --- | --- | --- | --- | --- | --- |"]
    contended = []
    for date in sorted(origin):
        run = runs.get(date) or {}
        env = run.get("environment") or {}
        la = run.get("load_average") or {}
        if run.get("quick"):
            kind = "quick smoke run (tiny sizes, -O0: the numbers mean nothing)"
        elif run.get("extended"):
            kind = "extended"
        else:
            kind = "default CPU set"
        machine = (f"{env.get('cpu_model', '?')}, {env.get('cpu_affinity', env.get('cpu_count', '?'))} cores, "
                   f"{_fmt(env.get('memory_gib'), 1)} GiB, jax {env.get('versions', {}).get('jax', '?')}")
        load = f"{la['start'][0]:.2f} → {la['end'][0]:.2f}" if la else "—"
        if run.get("contended"):
            contended.append(date)
            load += " (contended)"
        keys = origin[date]
        shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
        L.append(f"| {date} | `{' '.join(run.get('command') or ['?'])}` | {kind} | {machine} | {load} | {shown} |")
    L.append("")
    if contended:
        L += [f"**Contended:** the load average exceeded the core count during the run(s) {', '.join(contended)}; "
              "their absolute times are inflated. Ratios taken in the same run are more robust.", ""]
    envs = {", ".join(f"{k}={v}" for k, v in ((runs.get(d) or {}).get("environment") or {}).get("env", {}).items())
            for d in origin}
    envs.discard("")
    if envs:
        L += [f"Environment: {'; '.join(sorted(envs))}.", ""]
    return L


def render_markdown(results: dict) -> str:
    """The benchmark tables as markdown (machine, ceilings, inference, stages, training, knobs)."""
    tasks, summ = results["tasks"], results["summary"]
    L: list[str] = []
    add = L.append
    add(f"# hdrjax benchmark — {results['machine']}")
    add("")
    runs = runs_of(results)
    L.extend(runs_markdown(results, runs))

    def run_of(entry: dict | None) -> str:
        """' (run DATE)' after a heading when the file holds results of several runs."""
        if not entry or len(runs) < 2:
            return ""
        return f" (run {entry.get('from_run') or results['created']})"

    peak = tasks.get("peak", {}).get("result")
    if peak:
        L.extend(_table_head(f"## Ceilings{run_of(tasks['peak'])}", ("what", "value")))
        for n, g in peak["jnp_float32"].items():
            add(f"| `jnp.dot` float32 {n}² | {_fmt(g, 1)} GFLOP/s |")
        for n, g in peak["jnp_bfloat16"].items():
            add(f"| `jnp.dot` bfloat16 {n}² | {_fmt(g, 1)} GFLOP/s |")
        np_ = peak["numpy_float32"]
        env = (runs.get(tasks["peak"].get("from_run") or results["created"]) or {}).get("environment") or {}
        add(f"| numpy float32 {np_['size']}² ({env.get('numpy_blas', {}).get('name', 'BLAS')}) | "
            f"{_fmt(np_['gflops'], 1)} GFLOP/s ({_fmt(peak['numpy_over_jnp'], 2)} × jnp) |")
        add(f"| triad bandwidth ({_fmt(peak['bandwidth_array_mb'], 0)} MB arrays) | {_fmt(peak['bandwidth_gbs'], 1)} "
            "GB/s |")
        add(f"| machine balance | {_fmt(peak['machine_balance_flop_per_byte'], 1)} FLOP/byte |")
        add(f"| port's machine (quoted) | {PORT['matmul_peak_gflops']:.0f} GFLOP/s numpy 4096² |")
        add("")
    inf = [e for k, e in sorted(tasks.items(), key=lambda kv: kv[1].get("result", {}).get("megapixels", 0))
           if k.startswith("inference-")]
    if inf:
        L.extend(_task_table(
            "Inference: `reconstruct`, all four stages, tiles engine (512² tiles, overlap 128, skip unlit)"
            + run_of(inf[0]), INFERENCE_COLUMNS, inf, _inference_cells))
        src = next((e["result"]["source"] for e in inf if "result" in e), "?")
        add(f"Content: `{src}` resized to each size, exposed so {CLIP_PERCENT:g} % of pixels clip, gamma {GAMMA}, 8 "
            "bit. Median of the runs after a warm-up (on a same-aspect image of ≤ 1024 px, every tile "
            "hallucinated, so everything compiles there; compile time measured with jax.monitoring); fewer "
            "runs at the large sizes to fit the time budget. Peak RSS is the whole process (each size in a fresh "
            "process). Port numbers: " + PORT["source"] + ".")
        add("")
    vs = summ.get("vs_port")
    if vs:
        L.extend(_table_head("### Against the PyTorch port (quoted numbers, see above)", (
            "image", "speedup (port s / ours s)", "speedup, peak-normalised", "memory (ours / port RSS)")))
        for key, row in vs.items():
            add(f"| {key} | {_fmt(row['speedup'])}× | {_fmt(row.get('speedup_peak_normalized'))}× | "
                f"{_fmt(row.get('memory_fraction'))} |")
        add("")
        add(f"Goal: ≥ {GOAL_SPEEDUP:g}× faster on real photos at < {GOAL_MEMORY_FRACTION:g} of the memory. "
            "Peak-normalised: the port's time scaled by (its machine's 200 GFLOP/s) / (this run's jnp peak).")
        add("")
    photos = tasks.get("photos", {}).get("result", {}).get("photos")
    if photos:
        L.extend(_table_head(f"## Highlight-aware tiling on real photos (tiles engine){run_of(tasks['photos'])}", (
            "photo", "size", "clipped px", "tiles", "skipped", "skip s", "full s", "full / skip", "port s (est.)",
            "port / ours")))
        for p in photos:
            add(f"| {p['file'].split('/')[-1]} | {p['width']}×{p['height']} | "
                f"{_fmt(100 * p['clipped_pixel_fraction'], 1)} % | {p['skip']['tiles']} | "
                f"{_fmt(100 * p['skip']['skipped_fraction'], 0)} % | {_fmt(p['skip']['seconds'])} | "
                f"{_fmt(p['full']['seconds'])} | {_fmt(p['speedup_skip_vs_full'])}× | {_fmt(p.get('port_estimate_s'))} "
                f"| {_fmt(p.get('speedup_vs_port'))}× |")
        add("")
        add("All four stages, compile time subtracted; where no tile was skipped the full run would repeat "
            "the same calls and is not rerun. Skipping is exact (max |skip − full| = "
            f"{_fmt(max(p.get('max_abs_diff_skip_vs_full', 0) for p in photos), 6)}). 'port s (est.)' interpolates "
            "the port's quoted times linearly in pixel count (not measured).")
        add("")
    stages = tasks.get("stages", {}).get("result")
    if stages:
        add(f"## Per-stage forward, one pass at {stages['size'][1]}×{stages['size'][0]} "
            f"(roofline){run_of(tasks['stages'])}")
        add("")
        add(f"Same-process `jnp.dot` peak {_fmt(stages['peak_gflops'], 1)} GFLOP/s before, "
            f"{_fmt(stages['peak_gflops_after'], 1)} after (ratios use the higher), bandwidth "
            f"{_fmt(stages['bandwidth_gbs'], 1)} GB/s, balance {_fmt(stages['machine_balance_flop_per_byte'], 1)} "
            "FLOP/byte.")
        add("")
        add("| stage | input | s | GFLOP | GFLOP/s | × peak | FLOP/byte | s/MP at 128² | compile s | bound by |")
        add("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for name, r in stages["stages"].items():
            small = r.get("small", {}).get("seconds_per_mpixel")
            add(f"| {name} | {r['shape'][1]}×{r['shape'][0]} | {_fmt(r['seconds'])} | {_fmt(r['flops'] / 1e9, 1)} | "
                f"{_fmt(r['gflops_achieved'], 1)} | {_fmt(r['fraction_of_peak'])} | "
                f"{_fmt(r['intensity_flop_per_byte'], 1)} | {_fmt(small)} (vs {_fmt(r['seconds_per_mpixel'])}) | "
                f"{_fmt(r['compile_s'], 1)} | {r['bound']} |")
        m = stages["model"]
        add(f"| **model** (Lin on {stages['crf_size'][1]}²) | | {_fmt(m['seconds'])} | {_fmt(m['flops'] / 1e9, 1)} | "
            f"{_fmt(m['gflops_achieved'], 1)} | **{_fmt(m['fraction_of_peak'])}** | | | | |")
        add("")
        add(f"Hallucination-Net: {_fmt(100 * m['hallucination_flop_share'], 0)} % of the FLOPs, "
            f"{_fmt(100 * m['hallucination_time_share'], 0)} % of the time. Goal: the whole computation at ≥ "
            f"{GOAL_PEAK_FRACTION:.0%} of the measured peak; the port: {PORT['fraction_of_peak']:.0%} (quoted). "
            f"One-pass FLOPs at the port's 1088²: {_fmt(summ.get('tflop_1088_one_pass'))} TFLOP "
            f"(port: {PORT['tflop_per_image_1024']} TFLOP, hallucination {PORT['hallucination_share']:.0%}; ours "
            f"{_fmt(100 * (summ.get('hallucination_flop_share_1088') or 0), 0)} %).")
        add("")
    train_rows = [tasks[f"train-{s}"] for s in TRAIN_STAGES if f"train-{s}" in tasks]
    if train_rows:
        L.extend(_task_table(
            f"Training step (synthesis + forward + backward + Adam), one device{run_of(train_rows[0])}",
            TRAINING_COLUMNS, train_rows, _training_cells))
        add("Kernel gradient: on CPU our convs compute the weight gradient as one matmul per kernel tap "
            "(`hdrjax/models/conv.py`); the last column traces the same step with XLA's own weight-gradient "
            "convolution (`model.conv_kernel_grad='xla'`).")
        add("Largest batch: XLA's buffer sizes at this batch extrapolated to 80 % of the memory limit "
            "(activations scale with the batch); 'tried' runs a step there when that fits the time budget.")
        add("")
    scal = [tasks[k] for k in sorted(tasks) if k.startswith("scaling-")]
    scal = [e for e in scal if "result" in e and "skipped" not in e["result"]]
    if scal:
        base = scal[0]["result"]["seconds_per_step"]
        fake = scal[0]["result"]["fake_devices"]
        L.extend(_table_head(f"## Data-parallel scaling (same global batch){run_of(scal[0])}", (
            "devices", "compile s", "s/step", "images/s", "step time / 1 device", "collectives in HLO")))
        for e in scal:
            r = e["result"]
            add(f"| {r['devices']} | {_fmt(r['compile_s'], 1)} | {_fmt(r['seconds_per_step'])} | "
                f"{_fmt(r['images_per_s'])} | {_fmt(r['seconds_per_step'] / base)} | {r['collective_ops']} |")
        add("")
        if fake:
            add("Fake CPU devices share the same cores: this shows that the sharded program compiles and what "
                "the partitioning costs, not a speedup.")
            add("")
    knobs = tasks.get("knobs", {}).get("result")
    if knobs:
        L.extend(_table_head(f"## Knobs (ratio < 1: the knob is faster / smaller){run_of(tasks['knobs'])}",
                             ("knob", "measured on", "effect", "keep?")))
        for name, v in knobs.items():
            L.extend(_row(cells) for cells in knob_rows(name, v))
        add("")
    retired = results.get("retired")
    if retired:
        L.extend(retired_markdown(retired, runs_of(results)))
    skipped = [e["key"] for e in tasks.values() if "skipped" in e]
    if skipped:
        add(f"Not run (time limit): {', '.join(skipped)}.")
        add("")
    errors = [e for e in tasks.values() if "error" in e]
    if errors:
        add("## Failures")
        add("")
        for e in errors:
            add(f"- `{e['key']}`: {e['error'][:300]}")
        add("")
    regions_lines = regions.markdown(tasks)
    if regions_lines:
        add("")
        first = next(e for e in tasks.values() if e.get("task") == "regions")
        add(f"## Regions engine vs tiles vs one pass (real photos, shipped model, all four stages){run_of(first)}")
        add("")
        add("(a) `--engine regions` (default), (b) `--engine tiles` (512² tiles, 128 px overlap, unlit tiles "
            "skipped), (c) `--engine one-pass`; one process per photo times the engines interleaved after a "
            "warm-up each (median of the runs; 24 MP: one run, compile time subtracted); peak RSS from one fresh "
            "process per engine at 2 and 24 MP. Ratios are (c)'s time over (a)'s or (b)'s. "
            "Max Δ: largest |R(a) − R(c)| at pixels with α > 0, relative to R(c)'s range.")
        add("")
        L.extend(regions_lines)
    return "\n".join(L) + "\n"
