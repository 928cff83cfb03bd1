"""Benchmark sections `inference` and `photos`: the tiles engine end to end.

* inference `hdrjax.predict.reconstruct` with `--engine tiles` (512² tiles, overlap 128,
            unlit tiles skipped; all four stages) at 512², 1 MP, 2 MP (and 12 MP with
            --extended), each size in a fresh process: median of repeats after a warm-up,
            compile time apart, peak RSS / device memory. These are the sizes the PyTorch
            port's quoted times are for (report.PORT).
* photos    the same engine on real photographs (LDRs made from ../shared/data HDRs):
            fraction of tiles whose Hallucination-Net is skipped, time with skipping vs
            without.

Both pin `engine="tiles"`: they measure the engine every recorded result of these sections
was made with (the default before the regions engine). The default engine, `regions`, is
measured against tiles and one pass by the `regions` section (regions.py).
Runs inside the benchmark's worker processes (runner.py).
"""
from __future__ import annotations

import dataclasses
import time

from . import measure as m

STAGES = m.STAGES
ENGINE = "tiles"
ALIGN = 32  # predict's tile alignment (the Hallucination-Net's 5 poolings)


def crf_shape(h: int, w: int, long_side: int = 512) -> tuple[int, int]:
    """The shape predict resizes the dequantised image to for the CRF (its default crf_resolution)."""
    if max(h, w) <= long_side:
        return h, w
    s = long_side / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def proxy_shape(h: int, w: int, tile: int) -> tuple[int, int]:
    """The smallest same-aspect image with the tile shapes and CRF-input shape of h×w (warm-up).

    Scaled so its short side is one tile (its tiles stay tile×tile) and checked to give the
    same CRF-input shape, so the warm-up compiles everything the real run needs at a fraction
    of its cost; the image itself when that does not hold.
    """
    if min(h, w) <= tile:
        return h, w
    for short in (tile, tile + ALIGN, 2 * tile):
        s = short / min(h, w)
        ph, pw = max(1, round(h * s)), max(1, round(w * s))
        if (ph, pw) != (h, w) and crf_shape(ph, pw) == crf_shape(h, w) and min(ph, pw) < min(h, w):
            return ph, pw
    return h, w


def task_inference(spec: dict) -> dict:
    """End-to-end `reconstruct` on one image size: warm-up, timed repeats, memory."""
    import numpy as np

    from hdrjax import predict

    h, w = spec["height"], spec["width"]
    _, model, variables = m.build_model(spec.get("dtype"))
    ldr, source = m.sweep_ldr(h, w)
    config = predict.PredictConfig(
        engine=ENGINE, tile=spec["tile"], overlap=spec["overlap"], stages=STAGES,
        skip_unlit_tiles=spec.get("skip", True),
        batch_size=spec.get("batch_size", 1),
    )
    rss_setup = m.current_rss_bytes()
    # Warm-up on a same-aspect proxy with every tile hallucinated, so every function compiles.
    ph, pw = proxy_shape(h, w, spec["tile"])
    proxy = ldr if (ph, pw) == (h, w) else m.sweep_ldr(ph, pw)[0]
    c0 = m.compile_seconds()
    t0 = time.perf_counter()
    predict.reconstruct(model, variables, proxy, dataclasses.replace(config, skip_unlit_tiles=False))
    warmup_s = time.perf_counter() - t0
    compile_s = m.compile_seconds() - c0
    runs, stage_runs, late_compile = [], [], 0.0
    start = time.perf_counter()
    while len(runs) < spec["repeats"]:
        if runs and time.perf_counter() - start + m.median(runs) > spec["budget_s"]:
            break
        c0 = m.compile_seconds()
        t0 = time.perf_counter()
        r = predict.reconstruct(model, variables, ldr, config)
        wall = time.perf_counter() - t0
        late = m.compile_seconds() - c0  # a shape the proxy did not have (should be 0)
        late_compile += late
        runs.append(wall - late)
        stage_runs.append(r.stats.get("seconds", {}))
    stats = r.stats
    median = m.median(runs)
    stage_median = {s: m.median([sr.get(s, 0.0) for sr in stage_runs]) for s in STAGES}
    tiles = int(stats.get("tiles", 0))
    th, tw = stats.get("tile_shape", (0, 0))
    return {
        "height": h, "width": w, "megapixels": h * w / 1e6, "source": source,
        "config": dataclasses.asdict(config),
        "warmup_shape": [ph, pw], "warmup_s": warmup_s, "compile_s": compile_s,
        "compile_during_timed_runs_s": late_compile,
        "runs": len(runs), "times": runs, "seconds": median,
        "stage_seconds": stage_median,
        "seconds_without_refinement": median - (stage_median.get("refinement") or 0.0),
        "tiles": tiles, "tile_shape": [int(th), int(tw)],
        "hallucinated_tiles": int(stats.get("hallucinated_tiles", tiles)),
        "skipped_fraction": float(stats.get("skipped_fraction", 0.0)),
        "crf_shape": list(stats.get("crf_shape", [])),
        "computed_pixel_ratio": tiles * th * tw / (h * w) if tiles else None,
        "rss_after_setup_bytes": rss_setup,
        "peak_rss_bytes": m.peak_rss_bytes(),
        "device_memory": m.device_memory(),
        "platform": m.platform_name(),
        "output_finite": bool(np.isfinite(r.output).all()),
    }


def task_photos(spec: dict) -> dict:
    """Highlight-aware tiling on real photos: skipped tiles, time with skip vs without."""
    import numpy as np

    from hdrjax import predict

    _, model, variables = m.build_model()
    photos = []
    for rel in spec["files"]:
        hdr = m.read_hdr(rel)
        if hdr is None:
            continue
        if spec.get("max_side"):
            s = spec["max_side"] / max(hdr.shape[:2])
            if s < 1:
                hdr = m.fit_to(hdr, max(32, round(hdr.shape[0] * s)), max(32, round(hdr.shape[1] * s)))
        photos.append((rel, m.make_ldr(hdr)))
    if not photos:  # no ../shared/data: two synthetic scenes stand in (said in the output)
        size = spec.get("max_side") or 768
        photos = [(f"synthetic-{i}", m.make_ldr(m.synthetic_hdr(size * 3 // 4, size, seed=i))) for i in range(2)]
    rows = []
    for rel, ldr in photos:
        row = {"file": rel, "height": ldr.shape[0], "width": ldr.shape[1],
               "clipped_pixel_fraction": float((ldr.max(axis=-1) >= 1.0).mean())}
        for mode, skip in (("skip", True), ("full", False)):
            if not skip and row["skip"]["skipped_fraction"] == 0.0:
                # Every tile was lit: the full run would make exactly the same calls.
                row["full"] = dict(row["skip"], same_work_as_skip=True)
                row["max_abs_diff_skip_vs_full"] = 0.0
                continue
            config = predict.PredictConfig(engine=ENGINE, tile=spec["tile"], overlap=spec["overlap"],
                                           stages=STAGES, skip_unlit_tiles=skip)
            times, compiles = [], []
            for _ in range(spec["repeats"]):
                c0 = m.compile_seconds()
                t0 = time.perf_counter()
                r = predict.reconstruct(model, variables, ldr, config)
                wall = time.perf_counter() - t0
                compiles.append(m.compile_seconds() - c0)
                times.append(wall - compiles[-1])  # a new photo shape compiles the CRF net once
            row[mode] = {"seconds": m.median(times), "runs": len(times), "compile_s": sum(compiles),
                         "tiles": int(r.stats.get("tiles", 0)),
                         "hallucinated_tiles": int(r.stats.get("hallucinated_tiles", 0)),
                         "skipped_fraction": float(r.stats.get("skipped_fraction", 0.0)),
                         "stage_seconds": r.stats.get("seconds", {})}
            if skip:
                skip_out = r.output
            else:
                # Skipping is exact: unlit tiles give B, which is what the network gives there.
                row["max_abs_diff_skip_vs_full"] = float(np.max(np.abs(skip_out - r.output)))
        row["speedup_skip_vs_full"] = row["full"]["seconds"] / row["skip"]["seconds"]
        rows.append(row)
    return {"photos": rows, "clip_percent": m.CLIP_PERCENT, "gamma": m.GAMMA, "engine": ENGINE,
            "tile": spec["tile"], "overlap": spec["overlap"]}
