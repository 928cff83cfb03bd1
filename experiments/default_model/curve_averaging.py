"""Which single curve should a Linearization-Net fall back on when the image cannot tell cameras apart?

    python -m experiments.default_model.curve_averaging --out experiments/results/curve-averaging.json

A network trained with a squared error on its output predicts, where the image leaves it
unsure, the mean of the curves it cannot tell apart *in the space of that loss*. This script
scores that fallback directly: fixed inverse CRFs — the arithmetic mean of DoRF's training
curves (what the reference's curve MSE converges to), their geometric mean in log(g + eps)
(what `loss.lin_curve_space="log"` converges to) for several eps, and inverse sRGB — on
two sets:
  * `train`: training panoramas (every file of the folder except configs/recipe.TEST_NAMES)
    through DoRF's *training* curves: the set eps is chosen on;
  * `held_out`: the README's evaluation set (TEST_NAMES + the real photos) through DoRF's
    test curves, the protocol of experiments/default_model/evaluate.sh.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from experiments import results_io

EPSILONS = (1e-4, 3e-4, 1e-3, 1e-2)


def geometric_mean_curve(curves: np.ndarray, eps: float) -> np.ndarray:
    """exp(mean log(g + eps)) - eps over the curves, with the ends pinned at 0 and 1."""
    from hdrjax.camera import crf

    return crf.geometric_mean_curve(curves, eps)


def train_and_held_out(shared: pathlib.Path, train_bank, train_files: int, train_crfs: int, test_crfs: int) -> dict:
    """{"train": (files, CRFs), "held_out": (files, CRFs)}: the two sets of the module doc.

    train: `train_files` training panoramas spread over the folder (configs/recipe.TEST_NAMES
    left out) and `train_crfs` curves spread over `train_bank`; held_out: the README's held-out
    files and the first `test_crfs` of DoRF's test curves.
    """
    from hdrjax.configs import recipe
    from hdrjax.evaluation.protocol import load_test_bank

    training_files = sorted(f for f in (shared / "train_hdr").iterdir()
                            if f.suffix in (".hdr", ".exr") and f.name not in recipe.TEST_NAMES)
    step = max(1, len(training_files) // train_files)
    held_out = [shared / "train_hdr" / n for n in recipe.TEST_NAMES] + sorted((shared / "real_hdr").glob("*.exr"))
    return {
        "train": (training_files[::step][:train_files],
                  train_bank.take(np.linspace(0, len(train_bank) - 1, train_crfs).round().astype(int))),
        "held_out": (held_out, load_test_bank(f"dorf:{shared / 'crf' / 'dorf_201.npz'}", test_crfs)),
    }


def score(files, bank, train_curves, resolution: int, limit: int | None) -> dict:
    """PU21-PSNR (and speckle) of each fixed curve on the synthetic samples of `files` x `bank`."""
    from hdrjax.evaluation import loop, methods, protocol

    config = protocol.EvalConfig(resolution=resolution)
    ms = [methods.curve_method("arithmetic_mean", np.mean(train_curves, axis=0)),
          *[methods.curve_method(f"geometric_mean_eps{eps:g}", geometric_mean_curve(train_curves, eps))
            for eps in EPSILONS],
          methods.baseline_method("srgb")]
    result = loop.evaluate(protocol.folder_examples(files, config), ms, config, bank=bank, limit=limit)
    scalars = result.scalars()
    return {m.name: {"pu21_psnr": scalars[f"{m.name}/pu21_psnr"], "speckle": scalars.get(f"{m.name}/speckle"),
                     "inverse_crf_rmse": scalars.get(f"{m.name}/inverse_crf_rmse")} for m in ms}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shared", default="../shared/data", help="the folder with train_hdr/, real_hdr/, crf/")
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--train-crfs", type=int, default=24, help="training curves, spread over the split")
    p.add_argument("--test-crfs", type=int, default=10, help="test curves (the first K of the split)")
    p.add_argument("--train-files", type=int, default=6, help="training panoramas scored, spread over the folder")
    p.add_argument("--out", default="experiments/results/curve-averaging.json")
    args = p.parse_args(argv)

    from hdrjax.camera import crf

    shared = pathlib.Path(args.shared)
    spec = f"dorf:{shared / 'crf' / 'dorf_201.npz'}"
    train_bank = crf.load_bank(spec, "train")
    train_curves = np.asarray(train_bank.inverse, np.float64)
    sets = train_and_held_out(shared, train_bank, args.train_files, args.train_crfs, args.test_crfs)
    record = {"created": results_io.now(), "machine": results_io.machine(),
              "command": results_io.command(__spec__.name, argv),
              "what": __doc__.split("\n\n")[1].strip(), "epsilons": EPSILONS, "sets": {}}
    for name, (files, bank) in sets.items():
        record["sets"][name] = {"files": [f.name for f in files], "crfs": list(bank.names),
                                "methods": score(files, bank, train_curves, args.resolution, None)}
        best = max(record["sets"][name]["methods"].items(), key=lambda kv: kv[1]["pu21_psnr"])
        print(f"{name}: best {best[0]} {best[1]['pu21_psnr']:.2f} dB; arithmetic mean "
              f"{record['sets'][name]['methods']['arithmetic_mean']['pu21_psnr']:.2f} dB")
    results_io.write_json(args.out, record)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
