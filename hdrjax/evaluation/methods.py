"""The methods evaluated: the model, its ablations and stage prefixes, the baselines, the oracle.

Each is a `Method` whose `run(ldr, meta)` returns the HDR reconstructions (and the inverse
CRFs of the methods that have one); `parse_methods` reads the `--methods` list,
`build_methods` makes the Methods, `load_checkpoint` loads the model they run.

Methods (`--methods`, comma separated; groups `baselines`, `ablations`, `stages`, `oracles`, `all`)
------------------------------------------------------------------------------------------------
`model` (needs `--checkpoint`; `hdrjax.predict.reconstruct`, output after refinement for a
jointly fine-tuned checkpoint, else after hallucination), the ablations
`no_dequantization`, `g0_linearization`, `no_hallucination`, `no_refinement` (the same
`reconstruct` with one stage swapped out, see `ablate_variables`), the stage prefixes
`stages_dequantization_linearization` (Deq + Lin: the linear image B), `stages_hallucination`
(+ the blended Hallucination-Net output A, no refinement) and `stages_refinement` (+ the
Refinement-Net: the full model of a joint checkpoint), which measure what each stage adds; the
baselines of `hdrjax.evaluation.baselines` (identity, gamma22, srgb, g0 — the mean g0 of the inverse-CRF
basis —, akyuz2007) and `mean_crf` (the mean inverse CRF of the *training* split of `--crf`,
e.g. DoRF's 191 training curves: "always answer the average camera", the bar the
Linearization-Net has to beat in inverse_crf_rmse); and the synthetic-only oracle `true_crf`
(the true inverse CRF applied to the JPEG: what perfect linearisation alone gives).

`--checkpoint`: a training workdir or checkpoint folder (`hdrjax.weights.loading.load`), a
shipped-model folder (one with manifest.json, `hdrjax.weights.pretrained.load`), or `default` (the model
that ships with hdrjax).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from hdrjax.evaluation import baselines
from hdrjax.models.build import NETWORKS
from hdrjax.evaluation.protocol import EvalError

MODEL = "model"
ABLATIONS = ("no_dequantization", "g0_linearization", "no_hallucination", "no_refinement")
# Stage prefixes: the model run through its first k stages (hdrjax.models.build.NETWORKS), so each
# stage's contribution is the difference between consecutive rows.
STAGE_METHODS = {
    "stages_dequantization_linearization": NETWORKS[:2],
    "stages_hallucination": NETWORKS[:3],
    "stages_refinement": NETWORKS[:4],
}
# The Dequantization-Net's output C through the sample's true inverse CRF (synthetic only): with
# true_crf (the JPEG through the same curve) beside it, what the first stage does to the image
# when the curve is perfect. C itself is an LDR image, not a reconstruction to score.
DEQ_TRUE_CRF = "stages_dequantization_true_crf"
MEAN_CRF = "mean_crf"  # the training split's mean inverse CRF (needs the CRF bank, see mean_crf_method)
BASELINES = baselines.NAMES + (MEAN_CRF,)
ORACLES = ("true_crf",)
MODEL_METHODS = (MODEL,) + ABLATIONS + (DEQ_TRUE_CRF,) + tuple(STAGE_METHODS)  # the methods that need --checkpoint
ALL_METHODS = MODEL_METHODS + BASELINES + ORACLES
GROUPS = {
    "baselines": BASELINES,
    "ablations": ABLATIONS,
    "stages": (DEQ_TRUE_CRF,) + tuple(STAGE_METHODS),
    "oracles": ORACLES,
    "all": ALL_METHODS,
}

# The parameters `ablate_variables` zeroes: each is the last layer of a residual or
# coefficient head, so zeroing it turns that stage into its identity / mean output exactly.
_ABLATION_PARAMS = {
    # Deq(x) = x + tanh(conv2d_18(...)): a zero last conv gives tanh(0) = 0, C = clip(x) = x.
    "no_dequantization": ("dequantization", "conv2d_18"),
    # g_raw = g0 + dense(feature) @ hinv: zero weights give g0 (the monotone projection leaves
    # a non-decreasing g0 unchanged up to its 1e-8 step regulariser; a model with
    # lin_dark_end="prior" then gives g0's dark end from the prior, as it does to any curve).
    "g0_linearization": ("linearization", "ae_invcrf_decode_net", "dense"),
    # A = B + α relu(r) with r = the last 1×1 fuse conv: r = 0 gives A = B.
    "no_hallucination": ("hallucination", "decoder_h7_fuse_skip_connection"),
}


# ----------------------------------------------------------------------------- methods


@dataclasses.dataclass(frozen=True)
class Method:
    """A reconstruction method: `run(ldr f32[N, H, W, 3], meta) -> (hdr f32[N, H, W, 3], curves f32[N, 1024] | None)`.

    `meta` is one dict per image (keys "image", "crf", "stops", and "inverse_crf" — the true
    curve — in synthetic evaluation). `kind`: model | ablation | baseline | oracle.
    """

    name: str
    kind: str
    run: Callable[[np.ndarray, list[dict]], tuple[np.ndarray, np.ndarray | None]]
    synthetic_only: bool = False
    info: dict | None = None  # extra protocol facts (e.g. the curves mean_crf averages)


def baseline_method(name: str, basis=None) -> Method:
    """A `hdrjax.evaluation.baselines` function as a Method (its global curve, if any, is reported too)."""
    fn = baselines.get(name, basis)
    curve = baselines.curve_of(name, basis)

    def run(ldr, meta):
        hdr = np.asarray(fn(np.asarray(ldr, np.float32)), np.float32)
        return hdr, None if curve is None else np.broadcast_to(curve, (len(ldr), curve.size))

    return Method(name, "baseline", run)


def curve_method(name: str, curve, *, info: dict | None = None) -> Method:
    """A fixed global inverse CRF f32[1024] applied to the JPEG as a baseline (curve reported too)."""
    curve = np.asarray(curve, np.float32)

    def run(ldr, meta):
        hdr = np.asarray(baselines.inverse_curve(np.asarray(ldr, np.float32), curve), np.float32)
        return hdr, np.broadcast_to(curve, (len(ldr), curve.size))

    return Method(name, "baseline", run, info=info)


def mean_crf_method(crf_spec: str = "family") -> Method:
    """Baseline `mean_crf`: the mean inverse CRF of the training split of the bank `crf_spec`.

    With `dorf:PATH` that is the mean of DoRF's 191 training curves: "always answer the average
    camera", the inverse_crf_rmse a Linearization-Net must beat to have learned anything from
    the image. (`g0` instead uses the mean of the inverse-CRF basis the model is built on.)
    """
    from hdrjax.camera import crf as crf_lib

    try:
        bank = crf_lib.load_bank(crf_spec, "train")
    except crf_lib.CRFError as e:
        raise EvalError(f"--crf: {e}") from None
    return curve_method(MEAN_CRF, baselines.mean_curve(bank.inverse),
                        info={"crf_spec": f"{crf_spec}, train split", "curves": len(bank)})


def true_crf_method() -> Method:
    """Oracle: the sample's true inverse CRF applied to its JPEG input (synthetic only)."""

    def run(ldr, meta):
        curves = np.stack([np.asarray(m["inverse_crf"], np.float32) for m in meta])
        hdr = np.stack([baselines.inverse_curve(x, c) for x, c in zip(np.asarray(ldr, np.float32), curves)])
        return hdr.astype(np.float32), curves

    return Method("true_crf", "oracle", run, synthetic_only=True)


def dequantization_true_crf_method(model, variables, *, predict_config=None) -> Method:
    """`DEQ_TRUE_CRF`: the model's first stage, then the oracle's curve (synthetic only)."""
    deq = model_method(model, variables, stages=NETWORKS[:1], predict_config=predict_config)
    oracle = true_crf_method()

    def run(ldr, meta):
        return oracle.run(deq.run(ldr, meta)[0], meta)

    return Method(DEQ_TRUE_CRF, "stages", run, synthetic_only=True)


def _get_path(tree, path):
    for k in path:
        tree = tree[k]
    return tree


def ablate_variables(variables, ablation: str):
    """SingleHDR variables with one stage swapped out: a new tree, `variables` is not changed.

    no_dequantization: C = LDR; g0_linearization: the inverse CRF is the basis mean g0;
    no_hallucination: A = B. Each zeroes the stage's last layer (its residual / coefficient
    head), which makes the stage output exactly its input (or g0), so the ablation runs through
    the very same `reconstruct` (tiling, CRF resolution, batching) as the full model.
    no_refinement, "model" and the stage prefixes need no change (they differ in the stages run).
    """
    if ablation in ("no_refinement", MODEL) or ablation in STAGE_METHODS:
        return variables
    if ablation not in _ABLATION_PARAMS:
        raise EvalError(f"unknown ablation {ablation!r}; known: {', '.join(ABLATIONS)}")
    path = ("params",) + _ABLATION_PARAMS[ablation]
    try:
        leaf = _get_path(variables, path)
    except (KeyError, TypeError):
        raise EvalError(f"variables: no {'/'.join(path)} to zero for the {ablation} ablation "
                        "(the SingleHDR parameter names changed?)") from None

    def rebuild(tree, depth):
        if depth == len(path):
            return jax.tree.map(jnp.zeros_like, leaf)
        out = dict(tree)
        out[path[depth]] = rebuild(tree[path[depth]], depth + 1)
        return out

    return rebuild(variables, 0)


def model_method(model, variables, *, name: str = MODEL, stages: Sequence[str] | None = None,
                 predict_config=None) -> Method:
    """`hdrjax.predict.reconstruct_batch` as a Method; `name` may be an ablation (see `ablate_variables`).

    `stages`: the stages of the full model (default: through hallucination); "no_refinement"
    stops after hallucination; a stage prefix (`STAGE_METHODS`) runs exactly its stages.
    """
    from hdrjax import predict

    stages = tuple(stages) if stages is not None else NETWORKS[:3]
    if name == "no_refinement":
        stages = tuple(s for s in stages if s != "refinement")
    elif name in STAGE_METHODS:
        stages = STAGE_METHODS[name]
    # Evaluation crops are small (256² in the paper's protocol): with the tiles engine each crop
    # is one tile, i.e. one exact pass, and same-shape crops of several images share a call
    # (batch_size); the regions engine would measure the receptive field of every ablation.
    config = predict_config if predict_config is not None else predict.PredictConfig(engine="tiles")
    config = dataclasses.replace(config, stages=stages)
    ablated = ablate_variables(variables, name)

    def run(ldr, meta):
        # reconstruct pads every tile batch to batch_size: a power-of-two bucket avoids running
        # 8 tiles for one image while compiling at most log2(batch_size) + 1 shapes.
        bs = batch_bucket(len(ldr), config.batch_size)
        cfg = config if bs == config.batch_size else dataclasses.replace(config, batch_size=bs)
        results = predict.reconstruct_batch(model, ablated, list(np.asarray(ldr, np.float32)), cfg)
        hdr = np.stack([np.asarray(r.output, np.float32) for r in results])
        curves = None
        if all(r.inverse_crf is not None for r in results):
            curves = np.stack([np.asarray(r.inverse_crf, np.float32) for r in results])
        return hdr, curves

    kind = MODEL if name == MODEL else ("stages" if name in STAGE_METHODS else "ablation")
    return Method(name, kind, run)


def parse_methods(spec: str | Sequence[str], *, have_model: bool, joint: bool = True) -> list[str]:
    """Method names from a comma list with groups; model, ablations and stages need a checkpoint."""
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    names: list[str] = []
    for item in items:
        if not item:
            continue
        if item in GROUPS:
            group = [m for m in GROUPS[item] if have_model or m not in MODEL_METHODS]
            if not joint:
                # Without a trained Refinement-Net the model's output is already before refinement.
                group = [m for m in group if m not in ("no_refinement", "stages_refinement")]
            names += group
        elif item in ALL_METHODS:
            names.append(item)
        else:
            known = ", ".join(list(GROUPS) + list(ALL_METHODS))
            raise EvalError(f"--methods: unknown method {item!r}; known: {known}")
    names = list(dict.fromkeys(names))
    needs_model = [n for n in names if n in MODEL_METHODS]
    if needs_model and not have_model:
        raise EvalError(f"--methods: {', '.join(needs_model)} need(s) --checkpoint")
    if not names:
        raise EvalError("--methods: no method selected")
    return names


def build_methods(names: Sequence[str], *, model=None, variables=None, stages=None, predict_config=None,
                  basis=None, crf: str = "family") -> list[Method]:
    """Methods by name; `basis` (g0) defaults to the model's basis, else the built-in one;
    `crf`: the CRF bank spec whose training split `mean_crf` averages."""
    if basis is None and model is not None:
        basis = getattr(model, "basis", None)
    out = []
    for name in names:
        if name in MODEL_METHODS:
            if model is None:
                raise EvalError(f"method {name} needs a model (--checkpoint)")
            if name == DEQ_TRUE_CRF:
                out.append(dequantization_true_crf_method(model, variables, predict_config=predict_config))
            else:
                out.append(model_method(model, variables, name=name, stages=stages, predict_config=predict_config))
        elif name == MEAN_CRF:
            out.append(mean_crf_method(crf))
        elif name in BASELINES:
            out.append(baseline_method(name, basis))
        elif name == "true_crf":
            out.append(true_crf_method())
        else:
            raise EvalError(f"unknown method {name!r}")
    return out


def batch_bucket(n: int, batch_size: int) -> int:
    """The smallest power of two >= n, at most batch_size (batch shapes jit compiles for)."""
    return min(batch_size, 1 << max(0, int(n) - 1).bit_length())


# ----------------------------------------------------------------------------- the model they run


def load_checkpoint(path):
    """`hdrjax.weights.loading.load(path)` (model, variables, config, step, description, warning),
    with its errors as EvalError.

    `path`: a training workdir or checkpoint folder, a shipped-model folder with manifest.json,
    or `default`, the model shipped with the package.
    """
    from hdrjax.weights import loading, pretrained

    try:
        return loading.load(path)
    except (loading.LoadError, pretrained.PretrainedError) as e:
        raise EvalError(str(e)) from None
