"""Benchmark section `regions`: the regions engine against today's tiles and one pass, on photos.

For each photo (LDRs made from HDR files of ../shared/data at their native sizes, the 2 MP
1920×1080 view and a 24 MP upscale) and each engine — (a) `regions` (the default), (b)
`tiles` (the previous default: 512² tiles, 128 px overlap, unlit tiles skipped), (c)
`one-pass` (every network on the whole image, our stand-in for the PyTorch port's work) — a
process loads the shipped model, warms each engine up, and times `reconstruct` (all four
stages) with the engines interleaved (a, b, c, b, c, a, ...), so the ratios survive a machine
whose load changes; it reports the fraction of pixels with α > 0 and of the
Hallucination-Net's one-pass FLOPs spent, and compares (a) with (c) at the lit pixels. At 2
and 24 MP a fresh process per engine measures that engine's peak RSS. Also: the first
image's latency of `python -m hdrjax.predict` with a cold and a warm compilation cache, and the throughput of a folder of 1 MP photos.

Imported by experiments/benchmark.py (section `regions`); the functions starting with task_
run inside its worker processes.
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ENGINES = ("regions", "tiles", "one-pass")
# (name, source HDR relative to ../shared/data, size or None for native)
PHOTOS = (
    ("Desk", "real_hdr/Desk.exr", None),
    ("MtTamNorth", "real_hdr/MtTamNorth.exr", None),
    ("CandleGlass", "real_hdr/CandleGlass.exr", None),
    ("Cannon", "real_hdr/Cannon.exr", None),
    ("blouberg_sunrise_2", "train_hdr/blouberg_sunrise_2_1k.hdr", None),
    ("interior", "train_hdr/interior.exr", None),
    ("MtTamNorth 1920×1080", "real_hdr/MtTamNorth.exr", (1080, 1920)),
    ("MtTamNorth 24 MP", "real_hdr/MtTamNorth.exr", (4000, 6000)),
)
QUICK_PHOTOS = (("Desk 96px", "real_hdr/Desk.exr", (96, 64)),)
# One pass at 24 MP needs ~31 GB for the Hallucination-Net alone (XLA: ~1.3 kB per pixel):
# more than this machine has. Not run there; said so in the table.
ONE_PASS_MAX_PIXELS_CPU = 4_000_000
GOAL_SPEEDUP = 2.0
PORT_RSS_2MP_GB = 7.3  # the PyTorch port's peak RSS at 1920×1080, as measured in issue #12
EQUALITY_TOLERANCE = 1e-3  # of the output range, at pixels with α > 0


def _ldr(bench, source: str, size):
    hdr = bench.read_hdr(source)
    if hdr is None:
        h, w = size or (512, 768)
        return bench.make_ldr(bench.synthetic_hdr(h, w)), "synthetic"
    if size is not None:
        if size[0] * size[1] > hdr.shape[0] * hdr.shape[1]:
            import cv2  # upscaling: bicubic, a photo taken at a higher resolution

            hdr = bench.fit_to(hdr, round(size[0] / 2), round(size[1] / 2))
            hdr = cv2.resize(hdr, (size[1], size[0]), interpolation=cv2.INTER_CUBIC).clip(0, None)
        else:
            hdr = bench.fit_to(hdr, *size)
    return bench.make_ldr(hdr), source


def _hal_work(r, engine: str, h: int, w: int) -> float:
    from hdrjax.inference.tiles import ALIGN, round_up

    s = r.stats
    if engine == "regions":
        return s["hallucination_work"]
    if engine == "tiles":
        th, tw = s["tile_shape"]
        return s["hallucinated_tiles"] * th * tw / (round_up(h, ALIGN) * round_up(w, ALIGN))
    return 1.0


def task_regions(spec: dict, bench) -> dict:
    """One photo, the engines interleaved in this process: time per engine, stage split, work.

    Interleaving (a, b, c, a, b, c, ...) after one warm-up run each keeps the ratios fair on a
    machine whose load changes; (a) is compared with (c) at the lit pixels here. With
    `rss_only` (fresh process per engine), one run and its peak RSS.
    bench: the benchmark module running this worker (its compile-time listener and helpers).
    """
    import numpy as np

    from hdrjax import predict
    from hdrjax.inference import networks
    from hdrjax.weights import pretrained
    from hdrjax.models.build import NETWORKS
    from hdrjax.models.hallucination import BLEND_THRESHOLD

    model, variables, _, _ = pretrained.load(spec.get("model"))
    ldr, source = _ldr(bench, spec["source"], spec.get("size"))
    h, w = ldr.shape[:2]
    engines = spec["engines"]
    configs = {e: predict.PredictConfig(engine=e, stages=NETWORKS) for e in engines}
    out = {"photo": spec["name"], "source": source, "height": h, "width": w, "megapixels": h * w / 1e6,
           "engines": {}}
    last = {}
    for e in engines:  # warm-up: compile every shape
        c0 = bench.compile_seconds()
        t0 = time.perf_counter()
        last[e] = predict.reconstruct(model, variables, ldr, configs[e])
        first = time.perf_counter() - t0
        compile_s = bench.compile_seconds() - c0
        out["engines"][e] = {"first_run_s": first, "compile_s": compile_s, "times": [], "stages": []}
        if spec["repeats"] == 0:  # a large photo: the first run less its compile time
            out["engines"][e]["times"].append(first - compile_s)
            out["engines"][e]["stages"].append(last[e].stats["seconds"])
    for k in range(spec["repeats"]):
        order = engines[k % len(engines):] + engines[: k % len(engines)]
        for e in order:
            c1 = bench.compile_seconds()
            t0 = time.perf_counter()
            last[e] = predict.reconstruct(model, variables, ldr, configs[e])
            out["engines"][e]["times"].append(time.perf_counter() - t0 - (bench.compile_seconds() - c1))
            out["engines"][e]["stages"].append(last[e].stats["seconds"])
    for e, entry in out["engines"].items():
        r = last[e]
        entry["seconds"] = bench._median(entry["times"])
        stage_runs = entry.pop("stages")
        entry["stage_seconds"] = {k: bench._median([x.get(k, 0.0) for x in stage_runs]) for k in NETWORKS}
        entry["hallucination_work"] = _hal_work(r, e, h, w)
        entry["output_finite"] = bool(np.isfinite(r.output).all())
        for key in ("lit_fraction", "hallucination_crops", "hallucination_context", "dequantization_calls", "tiles"):
            if key in r.stats:
                entry[key] = r.stats[key]
    out["peak_rss_bytes"] = bench.peak_rss_bytes()  # of all engines together; rss_only rows are per engine
    if "regions" in last and "one-pass" in last:
        a, c = last["regions"], last["one-pass"]
        lit = networks.lit_mask(c.linear, getattr(model, "blend_threshold", BLEND_THRESHOLD))
        for name in ("hallucinated", "refined"):
            ref = getattr(c, name)
            scale = float(ref.max() - ref.min()) or 1.0
            diff = np.abs(getattr(a, name) - ref)
            out[f"max_diff_lit_{name}"] = float(diff[lit].max() / scale) if lit.any() else 0.0
            out[f"max_diff_all_{name}"] = float(diff.max() / scale)
    return out


def task_latency(spec: dict, bench) -> dict:
    """`python -m hdrjax.predict` on one photo, twice in fresh processes: cold then warm cache."""
    import numpy as np

    from hdrjax.io import write_image

    ldr, source = _ldr(bench, spec["source"], spec.get("size"))
    with tempfile.TemporaryDirectory(prefix="hdrjax-latency-") as tmp:
        photo = pathlib.Path(tmp) / "photo.png"
        write_image(photo, ldr)
        env = dict(os.environ, HDRJAX_CACHE_DIR=str(pathlib.Path(tmp) / "cache"))
        env.pop("XLA_FLAGS", None)
        runs = {}
        for name in ("cold", "warm"):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "hdrjax.predict", str(photo), "--output", str(pathlib.Path(tmp) / name)],
                                  env=env, capture_output=True, text=True, timeout=1800)
            runs[name] = {"seconds": time.perf_counter() - t0, "returncode": proc.returncode,
                          "log_tail": proc.stderr[-600:]}
        files = list((pathlib.Path(tmp) / "cache").rglob("*"))
        cache_bytes = sum(f.stat().st_size for f in files if f.is_file())
    return {"source": source, "height": int(ldr.shape[0]), "width": int(ldr.shape[1]), "runs": runs,
            "cache_bytes": cache_bytes, "warm_over_cold": runs["warm"]["seconds"] / runs["cold"]["seconds"],
            "finite": bool(np.isfinite(ldr).all())}


def task_folder(spec: dict, bench) -> dict:
    """Throughput of `reconstruct` over a folder of 1 MP photos (warm: a second pass)."""
    from hdrjax import predict
    from hdrjax.weights import pretrained
    from hdrjax.models.build import NETWORKS

    model, variables, _, _ = pretrained.load(spec.get("model"))
    size = tuple(spec["size"])
    photos = [_ldr(bench, src, size)[0] for src in spec["sources"]]
    config = predict.PredictConfig(engine=spec.get("engine", "regions"), stages=NETWORKS)
    for ldr in photos:  # warm-up: compile every shape and measure the receptive fields
        predict.reconstruct(model, variables, ldr, config)
    c0 = bench.compile_seconds()
    t0 = time.perf_counter()
    for ldr in photos:
        predict.reconstruct(model, variables, ldr, config)
    wall = time.perf_counter() - t0
    return {"images": len(photos), "height": size[0], "width": size[1], "seconds": wall,
            "images_per_s": len(photos) / wall, "compile_during_timed_s": bench.compile_seconds() - c0,
            "engine": config.engine}


def plan_groups(Group, _task, *, quick: bool, gpu: bool, workdir: str = "") -> list:
    """Per photo: one process timing the engines interleaved; at 2 and 24 MP also one fresh
    process per engine for its peak RSS; then first-image latency and folder throughput."""
    groups = []
    photos = QUICK_PHOTOS if quick else PHOTOS
    if gpu and not quick:  # the accelerator's budget: the 2 MP view (stage split) and 24 MP
        photos = tuple(p for p in PHOTOS if p[2] is not None)
    for name, source, size in photos:
        pixels = (size[0] * size[1]) if size else 0
        big = pixels > ONE_PASS_MAX_PIXELS_CPU
        engines = [e for e in ENGINES if not (big and e == "one-pass" and not gpu)]
        slug = name.replace(" ", "_").replace("×", "x")
        if not big:
            groups.append(Group(f"regions-{slug}", [_task(
                "regions", f"regions-{slug}", name=name, source=source, size=size, engines=engines,
                repeats=1 if quick else 2)], timeout_s=1800))
        if big or (size is not None and not quick):
            for e in engines:
                groups.append(Group(f"regions-{slug}-{e}-rss", [_task(
                    "regions", f"regions-{slug}-{e}-rss", name=name, source=source, size=size, engines=[e],
                    repeats=0, rss_only=True)], timeout_s=3600))
    if not quick:
        groups.append(Group("regions-latency", [_task("latency", "regions-latency", source="real_hdr/Desk.exr", size=None)],
                            timeout_s=1800))
        groups.append(Group("regions-folder", [_task(
            "folder", "regions-folder", size=[864, 1152],
            sources=["real_hdr/Desk.exr", "real_hdr/MtTamNorth.exr", "real_hdr/Cannon.exr", "train_hdr/interior.exr"],
        )], timeout_s=1800))
    return groups


def rows(tasks: dict) -> list[dict]:
    """One row per photo: the engines side by side, ratios against one pass (c), RSS per engine."""
    timing, rss = {}, {}
    for key, entry in tasks.items():
        r = entry.get("result")
        if entry.get("task") != "regions" or r is None:
            continue
        if entry.get("key", key).endswith("-rss"):
            for e, x in r["engines"].items():
                rss.setdefault(r["photo"], {})[e] = {"peak_rss_bytes": r["peak_rss_bytes"], **x}
        else:
            timing[r["photo"]] = r
    out = []
    for name, _, _ in PHOTOS + QUICK_PHOTOS:
        t, m = timing.get(name), rss.get(name, {})
        if not t and not m:
            continue
        eng = dict(m)
        if t:
            eng.update(t["engines"])
        a, b, c = eng.get("regions"), eng.get("tiles"), eng.get("one-pass")
        if a is None:
            continue
        base = t or next(iter(r for r in [tasks.get(k, {}).get("result") for k in tasks] if r and r.get("photo") == name))
        row = {"photo": name, "height": base["height"], "width": base["width"], "megapixels": base["megapixels"],
               "lit_fraction": a.get("lit_fraction"), "hallucination_work": a["hallucination_work"],
               "hallucination_context": a.get("hallucination_context"), "hallucination_crops": a.get("hallucination_crops"),
               "regions_s": a["seconds"], "tiles_s": b and b["seconds"], "one_pass_s": c and c["seconds"],
               "tiles_hallucination_work": b and b["hallucination_work"],
               "stage_seconds": a["stage_seconds"],
               "same_process_timing": t is not None,
               "max_diff_lit": (t or {}).get("max_diff_lit_refined"),
               "max_diff_lit_hallucinated": (t or {}).get("max_diff_lit_hallucinated")}
        for e, k in (("regions", "regions_rss_gb"), ("tiles", "tiles_rss_gb"), ("one-pass", "one_pass_rss_gb")):
            row[k] = m[e]["peak_rss_bytes"] / 1e9 if e in m else None
        if c:
            row["speedup_vs_one_pass"] = c["seconds"] / a["seconds"]
            row["tiles_speedup_vs_one_pass"] = c["seconds"] / b["seconds"] if b else None
        if b:
            row["speedup_vs_tiles"] = b["seconds"] / a["seconds"]
        out.append(row)
    return out


def _f(x, fmt):
    return "–" if x is None else format(x, fmt)


def markdown(tasks: dict) -> list[str]:
    """The regions table (and latency / folder lines) as markdown lines."""
    rs = rows(tasks)
    if not rs:
        return []
    L = ["| photo | size | α > 0 | Hal. FLOPs spent (a) / (b) | (a) regions | (b) tiles | (c) one pass | (a) vs (c) | (b) vs (c) | peak RSS (a) / (b) / (c) | max Δ at α > 0 |",
         "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for r in rs:
        L.append(
            f"| {r['photo']} | {r['width']}×{r['height']} | {_f(None if r['lit_fraction'] is None else 100 * r['lit_fraction'], '.1f')} % | "
            f"{100 * r['hallucination_work']:.0f} % / {_f(None if r['tiles_hallucination_work'] is None else 100 * r['tiles_hallucination_work'], '.0f')} % | "
            f"{r['regions_s']:.1f} s | {_f(r['tiles_s'], '.1f')} s | "
            f"{_f(r['one_pass_s'], '.1f') + ' s' if r['one_pass_s'] else 'not run (~31 GB)'} | "
            f"{_f(r.get('speedup_vs_one_pass'), '.2f')}× | {_f(r.get('tiles_speedup_vs_one_pass'), '.2f')}× | "
            f"{_f(r['regions_rss_gb'], '.2f')} / {_f(r['tiles_rss_gb'], '.2f')} / {_f(r['one_pass_rss_gb'], '.2f')} GB | "
            f"{_f(r['max_diff_lit'], '.1e')} |"
        )
    lat = tasks.get("regions-latency", {}).get("result")
    if lat:
        L += ["", f"First image (`python -m hdrjax.predict`, {lat['width']}×{lat['height']}, whole process incl. imports and "
                  f"model load): cold compilation cache {lat['runs']['cold']['seconds']:.1f} s, warm "
                  f"{lat['runs']['warm']['seconds']:.1f} s (×{lat['warm_over_cold']:.2f}); the cache holds "
                  f"{lat['cache_bytes'] / 1e6:.1f} MB."]
    fold = tasks.get("regions-folder", {}).get("result")
    if fold:
        L += ["", f"Folder of {fold['images']} photos at {fold['width']}×{fold['height']} (1 MP), warm: "
                  f"{fold['images_per_s']:.3f} images/s ({fold['seconds'] / fold['images']:.1f} s per image)."]
    return L


def summary(tasks: dict) -> dict:
    rs = rows(tasks)
    with_c = [r for r in rs if r.get("speedup_vs_one_pass")]
    sparse = [r for r in with_c if r["lit_fraction"] is not None and r["lit_fraction"] < 0.10]
    return {
        "rows": rs,
        "goal_speedup": GOAL_SPEEDUP,
        "min_speedup_vs_one_pass": min((r["speedup_vs_one_pass"] for r in with_c), default=None),
        "min_speedup_sparse_highlights": min((r["speedup_vs_one_pass"] for r in sparse), default=None),
        "max_diff_lit": max((r["max_diff_lit"] for r in rs if r["max_diff_lit"] is not None), default=None),
        "rss_2mp_gb": next((r["regions_rss_gb"] for r in rs if r["photo"] == "MtTamNorth 1920×1080"), None),
        "rss_24mp_gb": next((r["regions_rss_gb"] for r in rs if r["photo"] == "MtTamNorth 24 MP"), None),
    }


def write_json(path: pathlib.Path, data) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


README_BEGIN = "<!-- regions-benchmark:begin -->"
README_END = "<!-- regions-benchmark:end -->"


def readme_block(results: dict, source: str) -> str:
    """The README's regions table, generated from a benchmark result file (named in the text)."""
    tasks = results["tasks"]
    dates = sorted({e.get("from_run") or results["created"] for e in tasks.values() if e.get("task") in ("regions", "latency", "folder")})
    s = summary(tasks)
    lines = [README_BEGIN,
             f"Generated by `python experiments/readme_tables.py --write` from `{source}` "
             f"({results['machine']}, run {', '.join(dates)}{'; contended' if results.get('contended') else ''}). "
             "(a) `--engine regions` (default), (b) `--engine tiles` (the previous default), (c) `--engine one-pass`, "
             "our stand-in for the PyTorch port's work; shipped model, all four stages. Times: one process per photo "
             "runs the engines interleaved after a warm-up each (median of 2 runs; at 24 MP one run, compile time "
             "subtracted), so each ratio ((c)'s time over (a)'s or (b)'s) is taken under the same load. Peak RSS: "
             "one fresh process per engine, at 2 and 24 MP. Max Δ: largest |R(a) − R(c)| at pixels with α > 0, "
             "relative to R(c)'s range. The 1920×1080 and 24 MP rows are MtTamNorth resized (bilinear, then bicubic "
             "×2 for 24 MP): no HDR file of those sizes is available here.",
             ""]
    lines += markdown(tasks)
    lines += ["",
              f"Against the targets: ≥ {GOAL_SPEEDUP:g}× one pass on photos with under 10 % highlights: slowest such "
              f"photo {_f(s['min_speedup_sparse_highlights'], '.2f')}×; never slower than one pass: slowest photo "
              f"{_f(s['min_speedup_vs_one_pass'], '.2f')}×; equal to one pass at α > 0 within 1e-3 of the range: "
              f"largest Δ {_f(s['max_diff_lit'], '.1e')}; peak RSS at 2 MP ≤ ¼ of the port's {PORT_RSS_2MP_GB} GB: "
              f"{_f(s['rss_2mp_gb'], '.2f')} GB ({_f(s['rss_2mp_gb'] and s['rss_2mp_gb'] / PORT_RSS_2MP_GB, '.2f')} of it); "
              f"24 MP within 4 GB: {_f(s['rss_24mp_gb'], '.2f')} GB.",
              README_END]
    return "\n".join(lines)
