"""Does the Linearization-Net's curve do better below a few codes if it follows a prior shape there?

    python -m experiments.default_model.dark_end --checkpoint default --out experiments/results/dark-end.json

The error budget puts most of the Deq + Lin prefix's loss against inverse sRGB in the deep
shadows, and the curve's darkest codes are where it goes wrong: the PCA curve often dips below
zero near black, and the monotone projection turns the dip into a run of codes mapped to
exactly 0 (pure black where the scene is merely dark), or it rises far too steeply (shadow
noise amplified). An image says little about the curve there: a few codes of noise and
quantisation. `model.lin_dark_end="prior"` (`hdrjax.camera.crf.dark_end_prior`) keeps the
network's curve from a knot code up and, below it, uses the geometric mean of DoRF's training
curves, scaled to meet the network's curve at the knot (power 0), or also drawn towards the
prior's own level towards black (power 1). This script scores the Deq + Lin prefix of a model
with the network's own curve and with each knot and power, on two sets:
  * `train`: training panoramas (every file of the folder except configs/recipe.TEST_NAMES)
    through DoRF's *training* curves: the set the knot and power are chosen on;
  * `held_out`: the README's evaluation set (TEST_NAMES + the real photos) through DoRF's
    test curves, the protocol of experiments/default_model/evaluate.sh.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from experiments import results_io
from experiments.default_model import curve_averaging

KNOTS = (16, 32, 64)  # 8-bit codes
POWERS = (0.0, 1.0)
NETWORK = "network"


def variant_name(knot: int, power: float) -> str:
    return f"prior_code{knot}_power{power:g}"


def methods_for(model, variables, shape, knots=KNOTS, powers=POWERS):
    """The Deq + Lin prefix with the network's curve, and with each (knot, power) dark end.

    All share one run of the model per batch: the Dequantization-Net's output C and the curves.
    """
    import jax.numpy as jnp

    from hdrjax.camera import crf
    from hdrjax.evaluation import baselines, methods

    deq = methods.model_method(model, variables, stages=("dequantization",))
    deq_lin = methods.model_method(model, variables, name="stages_dequantization_linearization")
    memo = {}

    def outputs(ldr, meta):
        key = (tuple((m["image"], m["crf"], m["stops"]) for m in meta), ldr.shape)
        if key not in memo:
            memo.clear()
            hdr, curves = deq_lin.run(ldr, meta)
            memo[key] = (deq.run(ldr, meta)[0], hdr, curves)
        return memo[key]

    def network(ldr, meta):
        _, hdr, curves = outputs(ldr, meta)
        return hdr, curves

    def variant(knot, power):
        def run(ldr, meta):
            c, _, curves = outputs(ldr, meta)
            g = np.asarray(crf.dark_end_prior(jnp.asarray(curves), shape, crf.code_sample(knot), power), np.float32)
            hdr = np.stack([baselines.inverse_curve(x, gi) for x, gi in zip(np.asarray(c, np.float32), g)])
            return hdr.astype(np.float32), g
        return methods.Method(variant_name(knot, power), "stages", run)

    return [methods.Method(NETWORK, "stages", network)] + [variant(k, p) for k in knots for p in powers]


def score(files, bank, model, variables, shape, resolution: int, knots=KNOTS, powers=POWERS) -> dict:
    """PU21-PSNR, speckle, curve RMSE and deep-shadow MSE of every variant on `files` x `bank`."""
    from hdrjax.evaluation import loop, methods, protocol

    config = protocol.EvalConfig(resolution=resolution)
    ms = methods_for(model, variables, shape, knots, powers) + [methods.baseline_method("srgb")]
    result = loop.evaluate(protocol.folder_examples(files, config), ms, config, bank=bank, error_budget=True)
    scalars = result.scalars()
    bands = {(r["method"], r["band"]): r["mse"] for r in result.budget["bands"] if r["exposure"] == "all"}
    return {m.name: {"pu21_psnr": scalars[f"{m.name}/pu21_psnr"], "speckle": scalars.get(f"{m.name}/speckle"),
                     "inverse_crf_rmse": scalars.get(f"{m.name}/inverse_crf_rmse"),
                     "deep_shadow_mse": bands.get((m.name, "deep_shadow")),
                     "shadow_mse": bands.get((m.name, "shadow"))} for m in ms}


DARK_CODES = (1, 2, 4, 8, 16, 32, 64, 128)


def dark_codes(files, bank, model, variables, resolution: int, stops: float) -> dict:
    """What the network's curve does in the darkest codes, against the true curve, at `stops`.

    Per code of DARK_CODES: the share of samples whose curve maps it to black (under 1 % of the
    true value: the clip projection leaves 1e-8 steps, not exact zeros), and the quantiles of
    predicted / true inverse CRF there.
    """
    from hdrjax.camera import crf
    from hdrjax.evaluation import methods, protocol

    config = protocol.EvalConfig(resolution=resolution, exposure_stops=(stops,))
    deq_lin = methods.model_method(model, variables, name="stages_dequantization_linearization")
    pred, true = [], []
    for example in protocol.folder_examples(files, config):
        for ldr, _, _, meta in protocol.synthetic_samples(example, bank, config):
            pred.append(deq_lin.run(ldr, meta)[1])
            true.append(np.stack([m["inverse_crf"] for m in meta]))
    pred, true = np.concatenate(pred), np.concatenate(true)
    out = {"samples": len(pred), "stops": stops, "codes": {}}
    for code in DARK_CODES:
        i = crf.code_sample(code, pred.shape[-1])
        ratio = pred[:, i] / true[:, i]
        out["codes"][str(code)] = {"share_black": round(float(np.mean(ratio < 0.01)), 3),
                                   **{f"ratio_q{q}": round(float(np.quantile(ratio, q / 100)), 3)
                                      for q in (10, 50, 90)}}
    return out


def curve_levels(banks: dict) -> dict:
    """Each bank's typical true inverse CRF at DARK_CODES: the geometric mean (eps
    crf.DARK_END_EPS, the prior's own), beside inverse sRGB.  The network learns the training
    curves' level where an image says little; a test set whose curves lie elsewhere in the dark
    gets that level anyway."""
    from hdrjax.camera import crf
    from hdrjax.evaluation import baselines

    out = {}
    for name, bank in banks.items():
        inverse = np.asarray(bank.inverse)
        mean = crf.geometric_mean_curve(inverse, crf.DARK_END_EPS)
        out[name] = {"curves": len(inverse),
                     "level": {str(c): round(float(mean[crf.code_sample(c, inverse.shape[-1])]), 5)
                               for c in DARK_CODES}}
    srgb = np.asarray(baselines.inverse_srgb(np.asarray(DARK_CODES) / 255.0))
    out["srgb"] = {"curves": 1, "level": {str(c): round(float(x), 5) for c, x in zip(DARK_CODES, srgb)}}
    return out


def _show(value, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="default", help="the model whose Deq + Lin prefix is scored")
    p.add_argument("--shared", default="../shared/data", help="the folder with train_hdr/, real_hdr/, crf/")
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--train-crfs", type=int, default=8, help="training curves, spread over the split")
    p.add_argument("--test-crfs", type=int, default=10, help="test curves (the first K of the split)")
    p.add_argument("--train-files", type=int, default=6, help="training panoramas scored, spread over the folder")
    p.add_argument("--sets", default="train,held_out")
    p.add_argument("--knots", default=",".join(map(str, KNOTS)), help="8-bit codes (default %(default)s)")
    p.add_argument("--powers", default=",".join(f"{x:g}" for x in POWERS), help="default %(default)s")
    p.add_argument("--cross-validate", action="store_true",
                   help="train set only: the prior shape from every other DoRF training curve, the scores on "
                        "the others (the shipped shape is fitted to all 191, the train set's curves included)")
    p.add_argument("--dark-codes", action="store_true",
                   help="only the network's curve in the darkest codes against the true one, per set and "
                        "exposure (--dark-stops), and the typical level of each set's true curves there")
    p.add_argument("--dark-stops", default="-3,0", help="exposures of --dark-codes, in stops (default %(default)s)")
    p.add_argument("--out", default="experiments/results/dark-end.json")
    args = p.parse_args(argv)
    knots = tuple(int(k) for k in args.knots.split(","))
    powers = tuple(float(x) for x in args.powers.split(","))

    from hdrjax.camera import crf
    from hdrjax.evaluation import methods

    shared = pathlib.Path(args.shared)
    spec = f"dorf:{shared / 'crf' / 'dorf_201.npz'}"
    train_bank = crf.load_bank(spec, "train")
    shape = crf.dark_end_shape()
    scored_train = train_bank
    if args.cross_validate:
        index = np.arange(len(train_bank))
        shape = crf.geometric_mean_curve(np.asarray(train_bank.inverse)[index % 2 == 0], crf.DARK_END_EPS)
        scored_train = train_bank.take(index[index % 2 == 1])
    sets = curve_averaging.train_and_held_out(shared, scored_train, args.train_files, args.train_crfs,
                                              args.test_crfs)
    if args.cross_validate and args.sets != "train":
        p.error("--cross-validate scores the train set only: add --sets train")
    model, variables, *_ = methods.load_checkpoint(args.checkpoint)
    # "network" is the network's own curve down to code 0, whatever dark end the checkpoint ships
    # with (the shipped model now has lin_dark_end="prior"): the variants are built from it here.
    model = model.clone(lin_dark_end=NETWORK)
    record = {"created": results_io.now(), "machine": results_io.machine(),
              "command": results_io.command(__spec__.name, argv), "checkpoint": args.checkpoint,
              "prior": "even-indexed DoRF training curves; scored on odd-indexed ones" if args.cross_validate
              else "all 191 DoRF training curves (hdrjax.camera.crf.dark_end_shape)",
              "what": __doc__.split("\n\n")[1].strip(), "knots": knots, "powers": powers, "sets": {}}
    if args.dark_codes:
        record["dark_codes"] = {}
        for name in [s.strip() for s in args.sets.split(",") if s.strip()]:
            files, bank = sets[name]
            record["dark_codes"][name] = {"files": [f.name for f in files], "crfs": list(bank.names), "stops": {}}
            for stops in (float(x) for x in args.dark_stops.split(",")):
                r = dark_codes(files, bank, model, variables, args.resolution, stops)
                record["dark_codes"][name]["stops"][f"{stops:g}"] = r
                for code, v in r["codes"].items():
                    print(f"{name} {stops:+g} stops, code {code:>3}: black (< 1 % of the truth) in "
                          f"{v['share_black']:.0%} of samples; predicted / true {v['ratio_q10']:.2f} / "
                          f"{v['ratio_q50']:.2f} / {v['ratio_q90']:.2f} (10/50/90 %)")
        record["curve_levels"] = curve_levels({"dorf_train": crf.load_bank(spec, "train"),
                                               "dorf_test": crf.load_bank(spec, "test"),
                                               **{f"{name}_set": sets[name][1] for name in record["dark_codes"]}})
        for name, v in record["curve_levels"].items():
            levels = " ".join(f"{c}:{x:.4f}" for c, x in v["level"].items())
            print(f"{name:16s} ({v['curves']:3d} curves) level {levels}")
        results_io.write_json(args.out, record)
        print(f"wrote {args.out}")
        return 0
    for name in [s.strip() for s in args.sets.split(",") if s.strip()]:
        files, bank = sets[name]
        record["sets"][name] = {"files": [f.name for f in files], "crfs": list(bank.names),
                                "methods": score(files, bank, model, variables, shape, args.resolution,
                                                 knots, powers)}
        for m, v in record["sets"][name]["methods"].items():
            # speckle and a band's MSE are None where no sample has the region or the band
            print(f"{name:8s} {m:26s} PU21-PSNR {v['pu21_psnr']:.2f}  speckle {_show(v['speckle'], 2)}  "
                  f"deep-shadow MSE {_show(v['deep_shadow_mse'], 0)}")
    results_io.write_json(args.out, record)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
