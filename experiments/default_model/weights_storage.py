"""Can the shipped model be stored in float16, and what does each weight update add to the repository?

    python -m experiments.default_model.weights_storage --float32 runs/s3-export \\
        --float16 hdrjax/weights/default --out experiments/results/weights-storage.json

Two shipped-model folders of the same weights, one stored in float32 and one in float16 (the
recipe's `--dtype`), are scored side by side on held-out samples of the evaluation protocol
(configs/recipe.TEST_NAMES + the real photos, DoRF test curves): PU21-PSNR of the four-stage
output of each, and the PU21-PSNR of the float16 output against the float32 one (how far
apart the two reconstructions are, in the metric's units).

Bytes: the folder on disk and what git stores for it. Git keeps every version of a file as a
zlib-compressed object (weights do not delta against each other: every value changes), so the
zlib size of a folder's shards is what one more weight update adds to the history.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import zlib

import numpy as np

from experiments import results_io


def stored_bytes(folder: pathlib.Path) -> dict:
    """Bytes on disk and zlib-compressed (git's object size, default level) of a model folder."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    disk = sum(p.stat().st_size for p in files)
    packed = sum(len(zlib.compress(p.read_bytes(), zlib.Z_DEFAULT_COMPRESSION)) for p in files)
    return {"files": len(files), "disk_bytes": disk, "git_object_bytes": packed}


def weight_difference(a: pathlib.Path, b: pathlib.Path) -> dict:
    """Largest rounding of b's arrays against a's, relative to each array's largest value (same names).

    float16 keeps 11 significant bits down to 6e-5 and fewer below: an array of values that
    small (a rarely used bias) is rounded more than the 2^-11 of the others."""
    from hdrjax.weights import pretrained

    fa, _ = pretrained.load_arrays(a)
    fb, _ = pretrained.load_arrays(b)
    if set(fa) != set(fb):
        raise SystemExit(f"{a} and {b} hold different arrays")
    rel = {k: float(np.max(np.abs(fa[k] - fb[k])) / max(float(np.max(np.abs(fa[k]))), 1e-30)) for k in fa
           if np.issubdtype(fa[k].dtype, np.floating) and fa[k].size}
    worst = max(rel, key=rel.get)
    return {"arrays": len(fa), "median_relative_difference": float(np.median(list(rel.values()))),
            "max_relative_difference": rel[worst], "worst_array": worst,
            "worst_array_largest_value": float(np.max(np.abs(fa[worst])))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--float32", required=True, help="the model stored in float32 (a shipped-model folder)")
    p.add_argument("--float16", required=True, help="the same weights stored in float16")
    p.add_argument("--shared", default="../shared/data")
    p.add_argument("--crfs", type=int, default=1, help="DoRF test curves (the first K)")
    p.add_argument("--stops", default="-2,0,2", help="exposures in stops")
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--files", type=int, default=0, help="only the first N held-out files (0: all)")
    p.add_argument("--out", default="experiments/results/weights-storage.json")
    args = p.parse_args(argv)

    from hdrjax.configs import recipe
    from hdrjax.evaluation import loop, methods, metrics, protocol
    from hdrjax.weights import loading, pretrained

    folders = {"float32": pathlib.Path(args.float32), "float16": pathlib.Path(args.float16)}
    for dtype, folder in folders.items():
        stored = pretrained.read_manifest(folder)["dtype"]
        if stored != dtype:
            raise SystemExit(f"{folder}: stored as {stored}, not {dtype}")
    shared = pathlib.Path(args.shared)
    files = [shared / "train_hdr" / n for n in recipe.TEST_NAMES] + sorted((shared / "real_hdr").glob("*.exr"))
    config = protocol.EvalConfig(resolution=args.resolution, exposure_stops=protocol.parse_stops(args.stops))
    bank = protocol.load_test_bank(f"dorf:{shared / 'crf' / 'dorf_201.npz'}", args.crfs)
    outputs: dict[str, list] = {}
    ms = []
    for dtype, folder in folders.items():
        loaded = loading.load(str(folder))
        method = methods.model_method(loaded.model, loaded.variables, stages=methods.NETWORKS)
        outputs[dtype] = []

        def run(ldr, meta, _run=method.run, _out=outputs[dtype]):
            hdr, curves = _run(ldr, meta)
            _out.append(hdr)
            return hdr, curves

        ms.append(methods.Method(dtype, method.kind, run))
    result = loop.evaluate(protocol.folder_examples(files, config), ms, config, bank=bank, limit=args.files or None)
    scalars = result.scalars()
    a, b = (np.concatenate(outputs[d]) for d in ("float32", "float16"))
    # The float32 output is the reference: its peak sets the display scale of both.
    between = np.asarray(metrics.pu21_psnr(metrics.display_model(b, a), metrics.display_model(a)))
    record = {
        "created": results_io.now(), "machine": results_io.machine(),
        "command": results_io.command(__spec__.name, argv),
        "what": " ".join(__doc__.split("\n\n")[2:]).strip(),
        "samples": int(len(a)),
        "pu21_psnr": {d: scalars[f"{d}/pu21_psnr"] for d in folders},
        "pu21_psnr_float16_vs_float32_output": {"mean": float(np.mean(between)), "min": float(np.min(between))},
        "weights": weight_difference(folders["float32"], folders["float16"]),
        "bytes": {d: stored_bytes(f) for d, f in folders.items()},
    }
    results_io.write_json(args.out, record)
    print(f"PU21-PSNR float32 {record['pu21_psnr']['float32']:.3f}, float16 {record['pu21_psnr']['float16']:.3f}; "
          f"float16 vs float32 output {record['pu21_psnr_float16_vs_float32_output']['mean']:.1f} dB; "
          f"git object bytes {record['bytes']['float32']['git_object_bytes']} -> "
          f"{record['bytes']['float16']['git_object_bytes']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
