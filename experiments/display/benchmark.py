"""Measure the HDR output formats at 12 MP and the web page's speed (issue #21).

    python -m experiments.display.benchmark                   # both parts, shipped model, CPU
    python -m experiments.display.benchmark --only formats    # or: --only page

formats: one 12 MP photo (MtTamNorth, simulated at +1 stop as `hdrjax.simulate` does, its
8-bit photo upscaled bicubically to 4242×2828: no 12 MP HDR file is available here) is
reconstructed once with the shipped model; each output format is then encoded `--repeats`
times in this process (the smallest time is reported; the first includes nothing else) and
its file size recorded, beside EXR (float and half) and the 8-bit preview.  The display
formats' round-trip error against `hdrjax.display.mapping.to_display` of the result is
recorded with the same statistics tests/test_display.py bounds.

page: `python -m hdrjax.serve` is started as a user would (shipped model, regions engine);
a 1 MP JPEG of the same scene is uploaded twice over HTTP (the first compiles the model's
programs for that size, the second finds them compiled) and the time from the upload's
start to the first result (the views and statistics the page draws) and to the last
download is recorded; then a 12 MP JPEG is uploaded and, until it is done, the page, its
health check and the job's status are requested every 0.5 s and each answer's latency kept.
Writes experiments/results/display-cpu-2core.json (or --output).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

from .. import results_io

ROOT = pathlib.Path(__file__).resolve().parents[2]  # the repository
SCENE = ROOT.parent / "shared" / "data" / "real_hdr" / "MtTamNorth.exr"
SIZE_12MP = (4242, 2828)  # width, height: 12.0 MP at the scene's 3:2
SIZE_1MP = (1225, 817)  # 1.0 MP
JPEG_QUALITY = 95


def make_photos(folder: pathlib.Path) -> dict:
    """The simulated photo of the scene, resized to 1 MP and 12 MP JPEGs (and the 12 MP array)."""
    import cv2

    native = folder / "native.png"
    subprocess.run([sys.executable, "-m", "hdrjax.simulate", str(SCENE), "--output", str(native), "--exposure", "1",
                    "--seed", "0"], check=True, capture_output=True)
    photo = cv2.imread(str(native), cv2.IMREAD_COLOR)
    out = {}
    for name, size in (("1mp", SIZE_1MP), ("12mp", SIZE_12MP)):
        path = folder / f"mttamnorth-{name}.jpg"
        resized = cv2.resize(photo, size, interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(path), resized, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        out[name] = path
    return out


def round_trip_error(decoded: np.ndarray, expected: np.ndarray) -> dict:
    """The statistics tests/test_display.py bounds (relative display light, floor 0.05)."""
    error = np.abs(decoded - expected)
    relative = error / (expected + 0.05)
    return {"mean_abs": float(error.mean()), "median_rel": float(np.median(relative)),
            "p99_rel": float(np.percentile(relative, 99))}


def measure_formats(photo: pathlib.Path, folder: pathlib.Path, repeats: int) -> dict:
    from hdrjax import predict
    from hdrjax.weights import loading
    from hdrjax.display import avif, brackets, files, mapping, ultrahdr
    from hdrjax.io import atomic_write, read_image, write_image
    from hdrjax.tonemap import preview

    loaded = loading.load(None)
    ldr = read_image(photo)
    config = predict.PredictConfig(stages=loading.stages_for_checkpoint(loaded.config))
    t0 = time.perf_counter()
    r = predict.reconstruct(loaded.model, loaded.variables, ldr, config)
    model_seconds = time.perf_counter() - t0
    hdr = r.output
    h, w = hdr.shape[:2]
    print(f"reconstructed {w}×{h} in {model_seconds:.1f} s", flush=True)

    def write_bytes(path, data):
        with atomic_write(path) as f:
            f.write(data)

    writers = {
        "exr (float32, ZIP)": ("x.exr", lambda p: write_image(p, hdr)),
        "exr (half, ZIP)": ("x-half.exr", lambda p: write_image(p, hdr, half=True)),
        "hdr (Radiance RGBE)": ("x.hdr", lambda p: files.write(p, "hdr", hdr)),
        "uhdr (Ultra HDR JPEG)": ("x.uhdr.jpg", lambda p: files.write(p, "uhdr", hdr)),
        "avif (10-bit PQ)": ("x.avif", lambda p: files.write(p, "avif", hdr)),
        "avif-hlg (10-bit HLG)": ("x.hlg.avif", lambda p: files.write(p, "avif-hlg", hdr)),
        "preview PNG (8-bit Reinhard)": ("x.png", lambda p: write_image(p, preview(hdr).astype(np.float32) / 255.0)),
        "one bracket (8-bit JPEG)": ("x_b1_+0ev.jpg", lambda p: write_bytes(p, brackets.encode_bracket(hdr, 0.0))),
    }
    rows = []
    for label, (name, write) in writers.items():
        path = folder / name
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            write(path)
            times.append(time.perf_counter() - t0)
        rows.append({"format": label, "file": name, "bytes": path.stat().st_size, "seconds": min(times),
                     "all_seconds": times})
        print(f"{label}: {path.stat().st_size / 2**20:.1f} MiB, {min(times):.2f} s", flush=True)
    expected = mapping.to_display(hdr)
    errors = {
        "uhdr": round_trip_error(ultrahdr.decode((folder / "x.uhdr.jpg").read_bytes()), expected),
        "avif": round_trip_error(avif.decode((folder / "x.avif").read_bytes()), expected),
        "avif-hlg": round_trip_error(avif.decode((folder / "x.hlg.avif").read_bytes()), expected),
    }
    return {
        "photo": f"{SCENE.name} simulated at +1 stop, 8-bit photo resized to {w}×{h} (bicubic), JPEG {JPEG_QUALITY}",
        "width": w, "height": h, "megapixels": w * h / 1e6, "model_seconds": model_seconds,
        "headroom_stops": float(np.log2(mapping.headroom(hdr))),
        "reconstructed_fraction": r.stats.get("lit_fraction"),
        "uncompressed_float32_bytes": int(hdr.nbytes),
        "settings": {"uhdr_quality": ultrahdr.QUALITY, "uhdr_gain_map_scale": ultrahdr.GAIN_MAP_SCALE,
                     "avif_quality": avif.QUALITY, "avif_speed": avif.SPEED, "avif_chroma": "4:4:4",
                     "bracket_jpeg_quality": brackets.JPEG_QUALITY},
        "repeats": repeats, "formats": rows, "round_trip_error": errors,
    }


# ----------------------------------------------------------------------------- the page


def _request(url: str, data: bytes | None = None, method: str | None = None, headers=None, timeout=30):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        body = resp.read()
    return time.perf_counter() - t0, body


def _upload_and_follow(url: str, photo: pathlib.Path, probe: bool) -> dict:
    """Upload `photo`; poll until done; with `probe`, also time the page and health answers."""
    data = photo.read_bytes()
    t0 = time.perf_counter()
    headers = {"X-Filename": photo.name, "Content-Type": "application/octet-stream"}
    _, body = _request(url + "api/jobs", data, "POST", headers, timeout=120)
    job = json.loads(body)
    upload_seconds = time.perf_counter() - t0
    first_result = done = None
    latencies: dict[str, list[float]] = {"page": [], "health": [], "status": []}
    while True:
        seconds, body = _request(f"{url}api/jobs/{job['id']}")
        state = json.loads(body)
        latencies["status"].append(seconds)
        if first_result is None and state["view"] is not None:
            first_result = time.perf_counter() - t0
        if state["state"] != "queued" and state["state"] != "running":
            done = time.perf_counter() - t0
            break
        if probe:
            latencies["page"].append(_request(url)[0])
            latencies["health"].append(_request(url + "api/health")[0])
        time.sleep(0.5)
    assert state["state"] == "done", state
    out = {"photo": photo.name, "width": state["width"], "height": state["height"], "upload_bytes": len(data),
           "upload_seconds": upload_seconds, "seconds_to_first_result": first_result, "seconds_to_all_downloads": done,
           "server_stats": state["stats"]}
    if probe:
        every = [x for v in latencies.values() for x in v]
        out["latency"] = {k: {"count": len(v), "median": statistics.median(v), "max": max(v)}
                          for k, v in latencies.items() if v}
        out["max_latency_seconds"] = max(every)
        out["answers_within_1s"] = max(every) < 1.0
    return out


def measure_page(photos: dict) -> dict:
    from hdrjax.serve.cli import spawn

    t0 = time.perf_counter()
    proc, url = spawn(["--port", "0", "-q"])
    try:
        startup = time.perf_counter() - t0
        print(f"server up at {url} after {startup:.1f} s", flush=True)
        first = _upload_and_follow(url, photos["1mp"], probe=False)
        print(f"1 MP, first: {first['seconds_to_first_result']:.1f} s to the first result", flush=True)
        second = _upload_and_follow(url, photos["1mp"], probe=False)
        print(f"1 MP, second: {second['seconds_to_first_result']:.1f} s", flush=True)
        big = _upload_and_follow(url, photos["12mp"], probe=True)
        print(f"12 MP: done in {big['seconds_to_all_downloads']:.1f} s; slowest answer meanwhile "
              f"{big['max_latency_seconds']:.3f} s", flush=True)
        return {"server_startup_seconds": startup, "one_mp_first": first, "one_mp_second": second, "twelve_mp": big}
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=("formats", "page"), default=None)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--output", default=str(ROOT / "experiments" / "results" / "display-cpu-2core.json"))
    args = p.parse_args(argv)
    output = pathlib.Path(args.output)
    result = json.loads(output.read_text()) if output.exists() else {}
    result.update({"script": "python -m experiments.display.benchmark", "machine": results_io.machine()})
    with tempfile.TemporaryDirectory(prefix="bench-display-") as tmp:
        folder = pathlib.Path(tmp)
        photos = make_photos(folder)
        if args.only in (None, "formats"):
            load = os.getloadavg()[0]
            result["formats_12mp"] = {"run": results_io.now(), "load_average_start": load,
                                      **measure_formats(photos["12mp"], folder, args.repeats),
                                      "load_average_end": os.getloadavg()[0]}
            results_io.write_json(output, result)
        if args.only in (None, "page"):
            load = os.getloadavg()[0]
            result["page"] = {"run": results_io.now(), "load_average_start": load, **measure_page(photos),
                              "load_average_end": os.getloadavg()[0]}
            results_io.write_json(output, result)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
