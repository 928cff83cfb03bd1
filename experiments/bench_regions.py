"""Benchmark section `regions`: the regions engine against today's tiles and one pass, on photos.

For each photo (LDRs made from HDR files of ../shared/data at their native sizes, the 2 MP
1920×1080 view and a 24 MP upscale) and each engine — (a) `regions` (the default), (b)
`tiles` (the previous default: 512² tiles, 128 px overlap, unlit tiles skipped), (c)
`one-pass` (every network on the whole image, our stand-in for the PyTorch port's work) — a
fresh process loads the shipped model, warms up, times `reconstruct` (all four stages) and
reports its peak RSS; the fraction of pixels with α > 0 and of the Hallucination-Net's
one-pass FLOPs spent. Each worker saves its output so the parent compares (a) with (c) at the
lit pixels. Also: the first image's latency of `python -m hdrjax.predict` with a cold and a warm
compilation cache, and the throughput of a folder of 1 MP photos.

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


def task_regions(spec: dict, bench) -> dict:
    """One photo through one engine in this (fresh) process: time, stage split, peak RSS, work.

    bench: the benchmark module running this worker (its compile-time listener and helpers).
    """
    import numpy as np

    from hdrjax import pretrained, predict

    model, variables, _, _ = pretrained.load(spec.get("model"))
    ldr, source = _ldr(bench, spec["source"], spec.get("size"))
    config = predict.PredictConfig(engine=spec["engine"], stages=predict.STAGES, batch_size=1)
    c0 = bench.compile_seconds()
    t0 = time.perf_counter()
    r = predict.reconstruct(model, variables, ldr, config)
    first = time.perf_counter() - t0
    compile_s = bench.compile_seconds() - c0
    times, stage_runs = [], []
    if spec["repeats"] == 0:  # large photo: the first run, less its compile time, is the time
        times.append(first - compile_s)
        stage_runs.append(r.stats["seconds"])
    while len(times) < spec["repeats"]:
        c1 = bench.compile_seconds()
        t0 = time.perf_counter()
        r = predict.reconstruct(model, variables, ldr, config)
        times.append(time.perf_counter() - t0 - (bench.compile_seconds() - c1))
        stage_runs.append(r.stats["seconds"])
    s = r.stats
    h, w = ldr.shape[:2]
    if spec["engine"] == "regions":
        hal_work = s["hallucination_work"]
    elif spec["engine"] == "tiles":
        th, tw = s["tile_shape"]
        hal_work = s["hallucinated_tiles"] * th * tw / (predict._round_up(h, 32) * predict._round_up(w, 32))
    else:
        hal_work = 1.0
    if spec.get("save"):
        np.savez(spec["save"], hallucinated=r.hallucinated, refined=r.refined, linear=r.linear)
    return {
        "photo": spec["name"], "source": source, "engine": spec["engine"], "height": h, "width": w,
        "megapixels": h * w / 1e6, "seconds": bench._median(times), "times": times,
        "first_run_s": first, "compile_s": compile_s,
        "stage_seconds": {k: bench._median([x.get(k, 0.0) for x in stage_runs]) for k in predict.STAGES},
        "peak_rss_bytes": bench.peak_rss_bytes(), "device_memory": bench.device_memory(),
        "lit_fraction": float(s.get("lit_fraction", np.nan)) if "lit_fraction" in s else None,
        "hallucination_work": hal_work,
        "hallucination_crops": s.get("hallucination_crops"), "hallucination_context": s.get("hallucination_context"),
        "dequantization_calls": s.get("dequantization_calls"), "tiles": s.get("tiles"),
        "output_finite": bool(np.isfinite(r.output).all()),
    }


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
    from hdrjax import pretrained, predict

    model, variables, _, _ = pretrained.load(spec.get("model"))
    size = tuple(spec["size"])
    photos = [_ldr(bench, src, size)[0] for src in spec["sources"]]
    config = predict.PredictConfig(engine=spec.get("engine", "regions"), stages=predict.STAGES)
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


def plan_groups(Group, _task, *, quick: bool, gpu: bool, workdir: str) -> list:
    """One fresh process per (photo, engine) — peak RSS is that run's — plus latency and folder."""
    groups = []
    photos = QUICK_PHOTOS if quick else PHOTOS
    for name, source, size in photos:
        pixels = (size[0] * size[1]) if size else 0
        big = pixels > ONE_PASS_MAX_PIXELS_CPU
        for engine in ENGINES:
            if big and engine == "one-pass" and not gpu:
                continue
            key = f"regions-{name}-{engine}".replace(" ", "_").replace("×", "x")
            groups.append(Group(key, [_task(
                "regions", key, name=name, source=source, size=size, engine=engine,
                repeats=0 if big else (1 if quick else 2), save=str(pathlib.Path(workdir) / f"{key}.npz"),
            )], timeout_s=3600 if big else 1200))
    if not quick:
        groups.append(Group("regions-latency", [_task("latency", "regions-latency", source="real_hdr/Desk.exr", size=None)],
                            timeout_s=1800))
        groups.append(Group("regions-folder", [_task(
            "folder", "regions-folder", size=[864, 1152],
            sources=["real_hdr/Desk.exr", "real_hdr/MtTamNorth.exr", "real_hdr/Cannon.exr", "train_hdr/interior.exr"],
        )], timeout_s=1800))
    return groups


def compare_outputs(workdir: str, tasks: dict) -> None:
    """Add max |regions − one pass| at lit pixels (relative to the output range) to each regions row."""
    import numpy as np

    for key, entry in tasks.items():
        if not (key.startswith("regions-") and key.endswith("-regions") and "result" in entry):
            continue
        a_path = pathlib.Path(workdir) / f"{key}.npz"
        b_path = pathlib.Path(workdir) / f"{key[: -len('regions')]}one-pass.npz"
        if not (a_path.exists() and b_path.exists()):
            continue
        a, b = np.load(a_path), np.load(b_path)
        lit = (b["linear"].max(axis=-1) - np.float32(1.0)) + np.float32(0.12) > 0
        row = entry["result"]
        for name in ("hallucinated", "refined"):
            ref = b[name]
            scale = float(ref.max() - ref.min()) or 1.0
            diff = np.abs(a[name] - ref)
            row[f"max_diff_lit_{name}"] = float(diff[lit].max() / scale) if lit.any() else 0.0
            row[f"max_diff_all_{name}"] = float(diff.max() / scale)


def rows(tasks: dict) -> list[dict]:
    """One row per photo: the three engines side by side, ratios against one pass (c)."""
    by_photo: dict[str, dict] = {}
    for key, entry in tasks.items():
        if entry.get("task") != "regions":
            continue
        r = entry.get("result")
        if r is None:
            continue
        by_photo.setdefault(r["photo"], {})[r["engine"]] = r
    out = []
    for name, _, _ in PHOTOS + QUICK_PHOTOS:
        e = by_photo.get(name)
        if not e or "regions" not in e:
            continue
        a, b, c = e.get("regions"), e.get("tiles"), e.get("one-pass")
        row = {"photo": name, "height": a["height"], "width": a["width"], "megapixels": a["megapixels"],
               "lit_fraction": a["lit_fraction"], "hallucination_work": a["hallucination_work"],
               "hallucination_context": a["hallucination_context"],
               "regions_s": a["seconds"], "regions_rss_gb": a["peak_rss_bytes"] / 1e9,
               "tiles_s": b and b["seconds"], "tiles_rss_gb": b and b["peak_rss_bytes"] / 1e9,
               "tiles_hallucination_work": b and b["hallucination_work"],
               "one_pass_s": c and c["seconds"], "one_pass_rss_gb": c and c["peak_rss_bytes"] / 1e9,
               "max_diff_lit": a.get("max_diff_lit_refined"),
               "stage_seconds": a["stage_seconds"]}
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
            f"| {r['photo']} | {r['width']}×{r['height']} | {_f(r['lit_fraction'] and 100 * r['lit_fraction'], '.1f')} % | "
            f"{100 * r['hallucination_work']:.0f} % / {_f(r['tiles_hallucination_work'] and 100 * r['tiles_hallucination_work'], '.0f')} % | "
            f"{r['regions_s']:.1f} s | {_f(r['tiles_s'], '.1f')} s | "
            f"{_f(r['one_pass_s'], '.1f') + ' s' if r['one_pass_s'] else 'not run (~31 GB)'} | "
            f"{_f(r.get('speedup_vs_one_pass'), '.2f')}× | {_f(r.get('tiles_speedup_vs_one_pass'), '.2f')}× | "
            f"{r['regions_rss_gb']:.2f} / {_f(r['tiles_rss_gb'], '.2f')} / {_f(r['one_pass_rss_gb'], '.2f')} GB | "
            f"{_f(r['max_diff_lit'], '.1e')} |"
        )
    lat = tasks.get("regions-latency", {}).get("result")
    if lat:
        L += ["", f"First image (`python -m hdrjax.predict`, {lat['width']}×{lat['height']}, whole process incl. imports and "
                  f"model load): cold compilation cache {lat['runs']['cold']['seconds']:.1f} s, warm "
                  f"{lat['runs']['warm']['seconds']:.1f} s (×{lat['warm_over_cold']:.2f}); the cache holds "
                  f"{lat['cache_bytes'] / 1e6:.0f} MB."]
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
    }


def write_json(path: pathlib.Path, data) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
