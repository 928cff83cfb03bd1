"""SingleHDR composite: variable layout, width, stage selection, odd sizes, jit, teacher-forced
methods (what runs, runs the tiny model: the wiring is the same at every width)."""
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from hdrjax.models import ALL_STAGES, RefinementNet, Reconstruction, SingleHDR
from hdrjax.models import build, refinement
from hdrjax.models.layers import crop, pad_to_multiple
from hdrjax.models.linearization import linearize

# "rbg" keys: XLA:CPU compiles partitionable threefry for ~100 parameter arrays very slowly.
KEY = jax.random.key(0, impl="rbg")


def synthetic_basis(k=11):
    """Identity mean and sine components (zero at the ends): a basis that needs no file."""
    t = np.linspace(0, 1, 1024)
    components = np.stack([np.sin(np.pi * i * t) for i in range(1, k + 1)], -1) * np.sqrt(2 / 1024)
    return types.SimpleNamespace(mean=t.astype(np.float32), components=components.astype(np.float32))


def ldr_image(h, w, seed=0):
    """A bright LDR image f32[1, h, w, 3] (a gradient up to 1 so highlights get hallucinated)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.2, 1.0, w)[None, :, None] * np.ones((h, 1, 3))
    return jnp.asarray(np.clip(ramp + 0.05 * rng.normal(size=ramp.shape), 0, 1)[None], jnp.float32)


MODEL = SingleHDR(basis=synthetic_basis())
# The same wiring with 1/8 of the channels: what runs below tests how the stages connect,
# not the trained network (compiling costs the same, running far less).
TINY = SingleHDR(basis=synthetic_basis(), width=0.125)  # the tiny model's width (tests/conftest.py)


@pytest.fixture(scope="module")
def shapes():
    return jax.eval_shape(MODEL.init, KEY, jnp.zeros((1, 32, 32, 3)))


@pytest.fixture(scope="module")
def variables():
    """Random variables of TINY (nothing compiled; identity BatchNorm, zero biases)."""
    return build.random_variables(TINY, seed=0)


# ----------------------------------------------------------------------------- cheap (shapes only)


def test_init_creates_all_four_networks_with_reference_sizes(shapes):
    assert set(shapes) == {"params", "batch_stats"}
    assert set(shapes["params"]) == set(ALL_STAGES)
    assert set(shapes["batch_stats"]) == {"linearization", "hallucination"}
    count = {k: sum(a.size for a in jax.tree.leaves(v)) for k, v in shapes["params"].items()}
    assert count == {
        "dequantization": 1_999_779,
        "linearization": 1_195_328 + 5_643,
        "hallucination": 24_569_118,
        "refinement": 1_266_947,
    }
    # §2.5: 19 convs (kernel + bias) per U-Net; Lin: 18 convs (+ conv1 bias), 18 BNs, dense.
    leaves = {k: len(jax.tree.leaves(v)) for k, v in shapes["params"].items()}
    assert leaves["dequantization"] == leaves["refinement"] == 38
    assert leaves["linearization"] == 18 + 1 + 36 + 2
    assert len(jax.tree.leaves(shapes["batch_stats"]["linearization"])) == 36
    assert set(shapes["params"]["linearization"]) == {"crf_feature_net", "ae_invcrf_decode_net"}
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(shapes))


def test_refinement_net_alone():
    net = RefinementNet()
    s = jax.eval_shape(net.init, KEY, jnp.zeros((1, 16, 16, 9)))
    assert sum(a.size for a in jax.tree.leaves(s)) == refinement.N_PARAMS == 1_266_947
    assert s["params"]["conv2d_9"]["kernel"].shape == (3, 3, 128, 128)  # 128-channel bottleneck
    assert s["params"]["conv2d_10"]["kernel"].shape == (3, 3, 128, 128)
    assert s["params"]["conv2d_18"]["kernel"].shape == (3, 3, 16, 3)
    # Linear residual on the first 3 input channels (A), then ReLU.
    zero = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), s)
    zero["params"]["conv2d_18"]["bias"] = jnp.asarray([0.25, -0.5, 0.0])
    x = jnp.concatenate([jnp.full((1, 16, 16, 3), 0.4), jnp.full((1, 16, 16, 6), 7.0)], -1)
    out = jax.jit(net.apply)(zero, x)
    np.testing.assert_allclose(out[0, 0, 0], [0.65, 0.0, 0.4], atol=1e-6)


@pytest.mark.parametrize(
    "stages,present",
    [
        (("dequantization", "linearization"), {"dequantized", "inverse_crf", "linear"}),
        (("hallucination",), {"hallucinated"}),
        (("dequantization", "refinement"), {"dequantized", "refined"}),
    ],
)
def test_stage_selection_leaves_other_outputs_none(shapes, stages, present):
    rec = jax.eval_shape(lambda v, x: MODEL.apply(v, x, stages=stages), shapes, jnp.zeros((2, 37, 53, 3)))
    assert isinstance(rec, Reconstruction)
    for field in ("dequantized", "inverse_crf", "linear", "hallucinated", "refined"):
        value = getattr(rec, field)
        if field in present:
            assert value.shape == ((2, 1024) if field == "inverse_crf" else (2, 37, 53, 3)), field
            assert value.dtype == jnp.float32
        else:
            assert value is None, field


def test_unknown_stage_and_bad_input_are_rejected(shapes):
    with pytest.raises(ValueError, match="stages"):
        jax.eval_shape(lambda v, x: MODEL.apply(v, x, stages=("tonemapping",)), shapes, jnp.zeros((1, 32, 32, 3)))
    with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
        jax.eval_shape(MODEL.apply, shapes, jnp.zeros((1, 32, 32, 4)))


def test_bfloat16_and_border_options_keep_shapes_and_float32(shapes):
    model = SingleHDR(basis=synthetic_basis(), dtype=jnp.bfloat16, border=32)
    assert jax.tree.map(lambda a: (a.shape, a.dtype), jax.eval_shape(model.init, KEY, jnp.zeros((1, 32, 32, 3)))) == (
        jax.tree.map(lambda a: (a.shape, a.dtype), shapes)
    )
    rec = jax.eval_shape(model.apply, shapes, jnp.zeros((1, 37, 53, 3)))
    assert rec.refined.shape == (1, 37, 53, 3) and rec.refined.dtype == jnp.float32


def test_width_scales_every_network_and_one_is_the_reference(shapes):
    tiny = jax.eval_shape(TINY.init, KEY, jnp.zeros((1, 32, 32, 3)))
    # The same variables by name, each conv with 1/8 of the channels (the 3-channel outputs,
    # RGB inputs and 11 PCA weights stay).
    assert jax.tree.structure(tiny) == jax.tree.structure(shapes)
    p, q = tiny["params"], shapes["params"]
    assert p["dequantization"]["conv2d_9"]["kernel"].shape == (3, 3, 32, 32)  # 256 -> 32
    assert p["refinement"]["conv2d_18"]["kernel"].shape == (3, 3, 2, 3)
    assert p["linearization"]["crf_feature_net"]["conv1"]["kernel"].shape == (7, 7, 102, 8)
    assert p["linearization"]["ae_invcrf_decode_net"]["dense"]["kernel"].shape == (64, 11)
    assert p["hallucination"]["encoder"]["conv1_1"]["kernel"].shape == (3, 3, 3, 8)
    assert p["hallucination"]["decoder_h7_fuse_skip_connection"]["kernel"].shape == (1, 1, 6, 3)
    n = sum(a.size for a in jax.tree.leaves(p))
    assert 40 * n < sum(a.size for a in jax.tree.leaves(q)) < 80 * n
    # Width 1.0 is exactly the default model: the TF1 import and the shipped weights rely on it.
    same = jax.eval_shape(SingleHDR(basis=synthetic_basis(), width=1.0).init, KEY, jnp.zeros((1, 32, 32, 3)))
    assert jax.tree.map(lambda a: a.shape, same) == jax.tree.map(lambda a: a.shape, shapes)


def test_build_model_reads_width_and_gives_old_configs_width_one():
    from hdrjax import configs
    from hdrjax.errors import ConfigError

    config = configs.get_config("joint")
    assert config.model.width == 1.0 and build.OPTIONS_ADDED_LATER["width"] == 1.0
    config.model.width = 0.25
    assert build.build_model(config).width == 0.25
    # A config stored before the option existed has no `width`: it was the paper's network.
    del config.model["width"]
    del config.model["conv_kernel_grad"]
    old = build.build_model(config)
    assert old.width == 1.0 and old.conv_kernel_grad == "auto"
    for bad in (0, -1.0, "wide", True):
        config.model = ml_collections.ConfigDict({**config.model, "width": bad})
        with pytest.raises(ConfigError, match="config.model.width"):
            build.build_model(config)


def test_build_model_checks_the_dark_end_and_gives_old_configs_the_network_curve():
    from hdrjax import configs
    from hdrjax.errors import ConfigError

    config = configs.get_config("joint")
    for name in ("lin_dark_end", "lin_dark_end_code", "lin_dark_end_power"):
        del config.model[name]
    old = build.build_model(config)
    # Stored before the option existed: the curve was the network's all the way down.
    assert old.lin_dark_end == "network"
    for field, bad in (("lin_dark_end", "sky"), ("lin_dark_end_code", 0), ("lin_dark_end_code", 255),
                       ("lin_dark_end_code", 31.5)):
        config.model = ml_collections.ConfigDict({**config.model, field: bad})
        with pytest.raises(ConfigError, match=f"config.model.{field}"):
            build.build_model(config)
        config.model = ml_collections.ConfigDict({**config.model, field: build.model_defaults()[field]})


# ----------------------------------------------------------------------------- running the networks


@pytest.fixture(scope="module")
def run():
    """The jitted composite in inference mode; `run.traces` lists the shapes it was traced for."""
    traces = []

    @jax.jit
    def fn(v, x):
        traces.append(x.shape)  # runs only while tracing
        return TINY.apply(v, x)

    fn.traces = traces
    return fn


@pytest.fixture(scope="module")
def odd(variables, run):
    """A 37×53 input and its reconstruction (compiled once, shared by the tests below)."""
    x = ldr_image(37, 53)
    return x, run(variables, x)


def test_composite_on_odd_sizes_compiles_once_per_shape(variables, run, odd):
    x, rec = odd
    rec2 = run(variables, ldr_image(37, 53, seed=1))
    assert run.traces.count((1, 37, 53, 3)) == 1
    assert not np.allclose(rec.refined, rec2.refined)
    for image in (rec.dequantized, rec.linear, rec.hallucinated, rec.refined):
        assert image.shape == (1, 37, 53, 3) and image.dtype == jnp.float32
        assert np.all(np.isfinite(image))
    assert rec.output is rec.refined
    assert 0.0 <= float(rec.dequantized.min()) and float(rec.dequantized.max()) <= 1.0
    assert np.all(np.diff(np.asarray(rec.inverse_crf), axis=-1) >= 0)
    np.testing.assert_allclose(rec.linear, linearize(rec.dequantized, rec.inverse_crf), atol=1e-6)
    assert np.all(np.asarray(rec.hallucinated) >= np.asarray(rec.linear))  # adds energy only
    assert np.all(np.asarray(rec.refined) >= 0)
    # A new shape traces again (eval_shape traces without paying for an XLA compile) ...
    n = len(run.traces)
    jax.eval_shape(run, variables, jnp.zeros((1, 40, 40, 3)))
    assert len(run.traces) == n + 1
    # ... and the first shape is still cached.
    run(variables, ldr_image(37, 53, seed=2))
    assert len(run.traces) == n + 1


def test_teacher_forced_methods_chain_to_the_composite(variables, odd):
    x, rec = odd

    @jax.jit
    def chained(v, x):
        # The composite mirror-pads once (symmetric, to 64×64) and crops at the end.
        x, pads = pad_to_multiple(x, 32, mode="symmetric")
        c = TINY.apply(v, x, method="dequantize")
        g = TINY.apply(v, c, method="estimate_inverse_crf")
        b = linearize(c, g)
        a, r = TINY.apply(v, b, method="hallucinate")
        refined = TINY.apply(v, a, b, c, method="refine")
        return g, r, *(crop(t, pads) for t in (c, b, a, refined))

    g, r, c, b, a, refined = chained(variables, x)
    theirs_all = (rec.dequantized, rec.inverse_crf, rec.linear, rec.hallucinated, rec.refined)
    for mine, theirs in zip((c, g, b, a, refined), theirs_all):
        np.testing.assert_allclose(mine, theirs, atol=1e-5)
    assert r.shape == (1, 64, 64, 3)
    # A = B + α·relu(r): equal to B wherever max_c B <= 0.88.
    dark = np.asarray(b).max(-1) <= 0.88
    assert dark.any() and not dark.all()
    np.testing.assert_array_equal(np.asarray(a)[dark], np.asarray(b)[dark])


def _bn_layers(tree, path=()):
    """{path: {"mean", "var"}} of every BatchNorm in a batch_stats tree."""
    if "mean" in tree:
        return {path: tree}
    return {p: leaf for k, sub in tree.items() for p, leaf in _bn_layers(sub, path + (k,)).items()}


def test_train_mode_updates_both_batch_norm_collections(variables):
    x = ldr_image(32, 32)
    stages = ("linearization", "hallucination")
    rec, updated = jax.jit(lambda v, x: TINY.apply(v, x, train=True, stages=stages, mutable=["batch_stats"]))(
        variables, x
    )
    assert set(updated["batch_stats"]) == {"linearization", "hallucination"}
    for scope in stages:
        before, after = _bn_layers(variables["batch_stats"][scope]), _bn_layers(updated["batch_stats"][scope])
        assert before.keys() == after.keys() and len(before) > 0
        for layer, old in before.items():
            # Each running mean or variance moves (a dead-ReLU input keeps its mean at 0).
            moved = [not np.allclose(old[k], after[layer][k]) for k in ("mean", "var")]
            assert any(moved), (scope, layer)
    assert rec.hallucinated.shape == x.shape and rec.refined is None
