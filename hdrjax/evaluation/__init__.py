"""The evaluation: its protocol, methods, metrics, loop and reports, one module each.

`__main__.py` is the command line on top of them (`python -m hdrjax.evaluate`, the thin entry
hdrjax/evaluate.py, or `python -m hdrjax.evaluation`):

* `protocol`: what is measured on what: `EvalConfig`, the test patches, the example sources
  (a folder of HDR files, HDR-Real pairs, an `hdrjax.data` dataset), the test CRF bank and the
  camera that turns a patch into the evaluated (JPEG, ground truth, mask) samples;
* `methods`: what is measured: the model, its ablations and stage prefixes, the baselines,
  `mean_crf` and the `true_crf` oracle, each a `Method`; loading a checkpoint for them;
* `baselines`: the non-learned LDR→HDR methods (identity, gamma 2.2, sRGB, the mean g0 curve);
* `metrics`: PU21-PSNR/SSIM and the other HDR metrics, batched in jax.numpy;
* `loop`: `evaluate`, every method on every sample scored by `metrics`, and `summarize`;
* `report`: the CSV / markdown / JSON files of a result and the protocol stated as text;
* `speckle`: the speckle figure (fine-grained variation in smooth dark regions, reconstruction
  over ground truth), in every summary;
* `budget`, `curve_levels`: the error budget of `--error-budget` (PU21 error by intensity band,
  method against method; the curve's error along the LDR levels).

The package has no re-exports: import from the module that owns a name.
"""
