"""Fit the model behind the built-in camera bank (hdrjax/camera/camera_crf_prior.npz).

    python -m experiments.default_model.fit_camera_crfs ../shared/data/crf/dorf_201.npz
    # writes hdrjax/camera/camera_crf_prior.npz and experiments/results/camera-crfs.json

Fits `hdrjax.camera.crf.fit_prior` (mean + 6 principal directions + coefficient spread) to
DoRF's 191 training curves (the reference's split; its 10 test curves stay unseen) and
writes it where `crf.camera_bank()` reads it.  Prints how the bank it gives compares with
DoRF and with the parametric family: the spread of each around its own mean and the RMSE of
its mean against DoRF's test curves.
"""
import argparse
import io
import pathlib
import sys

import numpy as np

from hdrjax.camera import crf
from hdrjax.io import atomic_write

from .. import results_io


def _spread(bank) -> float:
    g = np.asarray(bank.inverse, np.float64)
    return float(np.sqrt(((g - g.mean(0)) ** 2).mean(1)).mean())


def _mean_vs(bank, test) -> float:
    g, t = np.asarray(bank.inverse, np.float64), np.asarray(test.inverse, np.float64)
    return float(np.sqrt(((g.mean(0) - t) ** 2).mean(1)).mean())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dorf", help="DoRF curves (.txt or .npz)")
    p.add_argument("--k", type=int, default=6, help="principal directions (default %(default)s)")
    p.add_argument("--out", default=str(crf.CAMERA_PRIOR_FILE))
    p.add_argument("--results", default=str(pathlib.Path(__file__).parents[1] / "results" / "camera-crfs.json"),
                   help="where the comparison of the banks is recorded")
    args = p.parse_args(argv)
    try:
        train = crf.load_bank(f"dorf:{args.dorf}", "train")
        test = crf.load_bank(f"dorf:{args.dorf}", "test")
    except crf.CRFError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    prior = crf.fit_prior(train, args.k)
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v, np.float64) for k, v in prior.items()})
    with atomic_write(args.out) as f:
        f.write(buf.getvalue())
    camera = crf.bank_from_prior(prior)  # the bank this fit gives, whatever --out is
    print(f"wrote {args.out}: {args.k} directions explain {float(prior['explained_variance']):.4%} of the variance")
    print(f"{'bank':<22} {'curves':>6} {'spread':>8} {'mean vs DoRF test':>18}")
    rows = {}
    for name, bank in (("dorf_train", train), ("camera", camera), ("parametric", crf.load_bank("parametric", "all"))):
        rows[name] = {"curves": len(bank), "spread_rmse": round(_spread(bank), 4),
                      "mean_vs_dorf_test_rmse": round(_mean_vs(bank, test), 4)}
        print(f"{name:<22} {len(bank):>6} {_spread(bank):>8.4f} {_mean_vs(bank, test):>18.4f}")
    written = results_io.write_json(args.results, {
        "what": "spread of each CRF bank's inverse curves around their own mean (mean RMSE) and the RMSE "
                "of its mean inverse curve against DoRF's 10 test curves",
        "script": "python -m experiments.default_model.fit_camera_crfs", "directions": args.k,
        "explained_variance": round(float(prior["explained_variance"]), 6), "banks": rows, "date": results_io.now()})
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
