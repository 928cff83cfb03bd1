"""Running a trained SingleHDR on photographs of any size: the engines and what they measure.

`hdrjax.predict` (`PredictConfig`, `reconstruct`, the `hdrjax-predict` command) is the public
entry on top of them:

* `regions`: the default engine (and one pass): the Dequantization- and Refinement-Net on the
  whole image within a memory budget, the Hallucination-Net only on crops around highlights;
* `crop_plan`: which crops the regions engine runs (pure numpy on a grid of 32-px cells);
* `receptive_field`: how much context a crop needs, measured per set of weights and cached;
* `tiles`: the tiles engine (overlapping cross-faded tiles) and the reference's own inference;
* `networks`: the four networks as jit-compiled functions every engine calls, and the rules
  between stages they share.

The package has no re-exports: import from the module that owns a name.
"""
