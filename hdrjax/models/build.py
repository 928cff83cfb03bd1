"""One place that builds SingleHDR from a config: its stages, default options and variables.

Everything that makes a model — training, inference, the TF1 importer, experiments, tests —
calls `build_model(config)` and `init_variables` / `random_variables` here, so a model option
has one default and one meaning.  `config` is a training config (configs) or the one
stored with a checkpoint: `config.model` holds SingleHDR's options (`model_defaults()`), and
`config.crf.invemor` optionally names an inverse-EMoR basis file (docs/reference.md §2.2.3).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import traverse_util

from hdrjax.errors import ConfigError
from hdrjax.models.conv import KERNEL_GRADS
from hdrjax.models.hallucination import BLEND_THRESHOLD
from hdrjax.models.linearization import DARK_ENDS
from hdrjax.models.singlehdr import ALL_STAGES

# The four networks, in pipeline order; also the inference stages (`SingleHDR(stages=...)`).
NETWORKS = ALL_STAGES
# What a training run trains: each network alone with teacher forcing (§1.6), then all four
# end to end ("joint", §3.4).  The Refinement-Net is only trained jointly.
TRAINING_STAGES = ("dequantization", "linearization", "hallucination", "joint")
# Spatial size used only to create parameters (every network is fully convolutional).
INIT_SIZE = 64


def model_defaults() -> ml_collections.ConfigDict:
    """SingleHDR's options as the paper intends them (the `model` block of every config).

    `reference_model()` gives the settings the authors' TF1 weights were trained with; the
    one field where they differ is `lin_monotone` (see hdrjax.camera.crf.monotone_projection).
    """
    m = ml_collections.ConfigDict()
    m.basis_components = 11  # §2.2.3: the first 11 inverse-EMoR components
    m.histogram_layout = "reference"  # §2.2.1 102-channel features; "tf2": the TF2 port's 93
    m.lin_bn_momentum = 0.999  # §2.2.2: slim batch_norm decay
    m.lin_bn_epsilon = 1e-3  # §2.2.2: slim batch_norm epsilon
    # Ours (docs/training.md): the PCA head's output scale and init.  1.0 / "glorot" = the
    # reference; a short run needs ~4 / "zeros" to leave the mean curve at all.
    m.lin_coefficient_scale = 1.0
    m.lin_head_init = "glorot"
    # §2.2.4 makes the PCA curve monotone.  "clip" (the paper's intent; ours): negative steps
    # become 0.  "shift": the reference's _increase, which adds a linear ramp to the whole
    # curve for any dip and so cannot beat the mean curve on DoRF (hdrjax.camera.crf).
    m.lin_monotone = "clip"
    # Ours (docs/training.md, "The dark end of the curve"): below the 8-bit code
    # lin_dark_end_code an image says little about its curve (a few codes of noise), and the
    # PCA curve goes wrong there (a dip clipped to a run of black codes, or far too steep).
    # "prior" keeps the network's curve above the code and below it uses the geometric mean of
    # DoRF's training curves scaled to meet it (hdrjax.camera.crf.dark_end_prior); "network"
    # is the reference.
    m.lin_dark_end = "network"
    m.lin_dark_end_code = 16
    m.lin_dark_end_power = 0.0
    m.blend_threshold = BLEND_THRESHOLD  # §2.3: highlights blended in above max_c x = 0.88
    m.border = 0  # mirrored border before padding (§4 inference uses 32; 0 for patches)
    m.dtype = "float32"  # conv compute dtype ("bfloat16" on accelerators; ours)
    # Channel multiplier of all four networks (ours).  1.0 is the paper's network, the only
    # width the TF1 weights, the VGG-16 encoder init and the shipped models fit; a width < 1
    # (e.g. 1/8) is a tiny model with the same wiring, for fast tests (tests/conftest.py).
    m.width = 1.0
    # How every convolution's kernel (weight) gradient is computed (hdrjax.models.conv):
    # "auto" = matmul taps on CPU (much faster than XLA:CPU's own there: see the kernel-gradient
    # rows of experiments/results/benchmark-cpu-2core.json), XLA's elsewhere;
    # "matmul" / "xla" force one.  Forward-mode autodiff (jax.jvp, jax.jacfwd) needs "xla":
    # the matmul path is a custom_vjp, which only reverse mode can differentiate.
    m.conv_kernel_grad = "auto"
    return m


# Options added to model_defaults() after checkpoints and shipped models had been written,
# with the value that every config stored before then implicitly had.  A stored config
# lacking one of them gets this value, never today's default (which may change later).
OPTIONS_ADDED_LATER = {
    "width": 1.0,  # the only width there was
    "conv_kernel_grad": "auto",  # was the environment variable HDRJAX_CONV_KERNEL_GRAD, "auto" unless set
    "lin_dark_end": "network",  # the curve was the network's down to code 0
    "lin_dark_end_code": 16,
    "lin_dark_end_power": 0.0,
}


def with_added_options(stored) -> dict:
    """A stored `model` block (dict or ConfigDict) with the options it predates at their old values."""
    return {**OPTIONS_ADDED_LATER, **dict(stored.items())}


def reference_model() -> ml_collections.ConfigDict:
    """The model options of the authors' TF1 weights (what hdrjax.tools.import_tf1 stores)."""
    m = model_defaults()
    m.lin_monotone = "shift"  # the reference's _increase, as the TF1 weights were trained
    return m


def build_model(config):
    """The SingleHDR module with `config.model`'s options and `config.crf.invemor`'s basis.

    A stored config without an option of `OPTIONS_ADDED_LATER` gets that option's old value.
    Raises ConfigError naming the field when an option is unknown or has a bad value.
    """
    from hdrjax.camera import basis as basis_lib
    from hdrjax.models import SingleHDR

    options = with_added_options(config.model)
    unknown = sorted(set(options) - set(model_defaults()))
    if unknown:
        raise ConfigError(f"config.model.{unknown[0]}: not a SingleHDR option "
                          f"(known: {', '.join(sorted(model_defaults()))})")
    k = options.pop("basis_components", 11)
    crf_config = config.get("crf") if hasattr(config, "get") else None
    invemor = crf_config.get("invemor", "") if crf_config is not None else ""
    basis = basis_lib.load_invemor(invemor) if invemor else basis_lib.default_basis(k)
    try:
        options["dtype"] = jnp.dtype(options.get("dtype", "float32"))
    except TypeError as e:
        raise ConfigError(f"config.model.dtype: {options.get('dtype')!r} is not a dtype name") from e
    width = options["width"]
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ConfigError(f"config.model.width: {width!r} is not a channel multiplier > 0 (1.0 = the paper's)")
    options["width"] = float(width)
    if options["conv_kernel_grad"] not in KERNEL_GRADS:
        raise ConfigError(f"config.model.conv_kernel_grad: {options['conv_kernel_grad']!r} is not one of "
                          f"{', '.join(KERNEL_GRADS)}")
    if options["lin_dark_end"] not in DARK_ENDS:
        raise ConfigError(f"config.model.lin_dark_end: {options['lin_dark_end']!r} is not one of "
                          f"{', '.join(DARK_ENDS)}")
    code = options["lin_dark_end_code"]
    if isinstance(code, bool) or not isinstance(code, int) or not 1 <= code <= 254:
        raise ConfigError(f"config.model.lin_dark_end_code: {code!r} is not an 8-bit code in 1..254")
    return SingleHDR(basis=basis, **options)


def init_variables(model, key, *, batch: int = 1, networks=NETWORKS) -> dict:
    """Fresh {"params", "batch_stats"} of all four networks, or of one (`networks=(name,)`)."""
    x = jnp.zeros((batch, INIT_SIZE, INIT_SIZE, 3), jnp.float32)
    networks = tuple(networks)
    if set(networks) == set(NETWORKS):
        variables = model.init(key, x, train=False)
    elif networks == ("dequantization",):
        variables = model.init(key, x, method=model.dequantize)
    elif networks == ("linearization",):
        variables = model.init(key, x, train=False, method=model.estimate_inverse_crf)
    elif networks == ("hallucination",):
        variables = model.init(key, x, train=False, method=model.hallucinate)
    else:
        raise ValueError(f"networks must be all four or one of dequantization, linearization, "
                         f"hallucination; got {networks}")
    return {"params": dict(variables["params"]), "batch_stats": dict(variables.get("batch_stats", {}))}


def variable_shapes(model, networks=NETWORKS):
    """The variables' tree of ShapeDtypeStructs (tracing only, nothing compiled or computed)."""
    return jax.eval_shape(lambda k: init_variables(model, k, networks=networks), jax.random.key(0))


def flat_variable_shapes(model) -> dict[tuple[str, ...], tuple[int, ...]]:
    """{(collection, network, …, leaf): shape} of every variable of `model` (tracing only)."""
    return {path: tuple(leaf.shape) for path, leaf in traverse_util.flatten_dict(variable_shapes(model)).items()}


def random_variables(model, *, seed: int = 0, neutral: bool = False) -> dict:
    """Variables with the model's exact tree, filled by numpy: Glorot-uniform kernels, zero
    biases, identity BatchNorm.  No initialiser is compiled (`model.init` compiles hundreds of
    small programs: minutes on a 2-core CPU), so tests and benchmarks that only need the
    architecture's cost or wiring start in seconds.

    neutral=True zeroes the last layer of the Dequantization- and Refinement-Net (residual 0)
    and the Linearization-Net's PCA head (curve = the basis mean), so images flow through the
    chain as through a trained model and the highlight mask is realistic.
    """
    rng = np.random.default_rng(seed)

    def leaf(path, s):
        names = [str(getattr(p, "key", p)) for p in path]
        name, where = names[-1], "/".join(names)
        shape = tuple(s.shape)
        if name == "kernel":
            if neutral and ("dequantization/conv2d_18/" in where or "refinement/conv2d_18/" in where
                            or "ae_invcrf_decode_net/" in where):
                return np.zeros(shape, s.dtype)
            receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
            fan_in, fan_out = receptive * shape[-2], receptive * shape[-1]
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            return rng.uniform(-limit, limit, shape).astype(s.dtype)
        if name in ("scale", "var"):
            return np.ones(shape, s.dtype)
        return np.zeros(shape, s.dtype)

    return jax.tree.map(jnp.asarray, jax.tree_util.tree_map_with_path(leaf, variable_shapes(model)))
