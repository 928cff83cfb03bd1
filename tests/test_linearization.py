"""Linearization-Net: feature stack, ResNet trunk, PCA head, monotone curve, weight loader."""
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hdrjax.models import linearization as lin
from hdrjax.models.linearization import LinearizationNet, WeightFileError

# "rbg" keys: XLA:CPU compiles partitionable threefry for ~25 parameter arrays very slowly.
KEY = jax.random.key(0, impl="rbg")


def synthetic_basis(k=11):
    """An inverse-CRF-like basis that needs no file: identity mean, sine components (0 at the ends)."""
    t = np.linspace(0, 1, 1024)
    components = np.stack([np.sin(np.pi * i * t) for i in range(1, k + 1)], -1) * np.sqrt(2 / 1024)
    return types.SimpleNamespace(mean=t.astype(np.float32), components=components.astype(np.float32))


def smooth_batch():
    """Two 32×32 linear images and their LDR through the gamma curve x^(1/2.2)."""
    yy, xx = np.meshgrid(np.linspace(0, 1, 32), np.linspace(0, 1, 32), indexing="ij")
    linear = np.stack(
        [
            np.stack([xx * yy, (xx + yy) / 2, 0.3 + 0.6 * xx * (1 - yy)], -1),
            np.stack([yy**2, xx, np.full_like(xx, 0.5)], -1),
        ]
    ).astype(np.float32)
    return linear, (linear ** (1 / 2.2)).astype(np.float32)


@pytest.fixture(scope="module")
def net():
    return LinearizationNet(basis=synthetic_basis())


@pytest.fixture(scope="module")
def variables(net):
    return jax.jit(net.init)(KEY, jnp.zeros((2, 32, 32, 3)))


@pytest.fixture(scope="module")
def apply(net):
    """Inference-mode forward, jitted once for the module (compiles once per input shape)."""
    return jax.jit(lambda v, x: net.apply(v, x))


# ----------------------------------------------------------------------------- features


def test_sobel_matches_tf_definition():
    from scipy import ndimage

    rng = np.random.default_rng(0)
    x = rng.uniform(size=(1, 6, 7, 3)).astype(np.float32)
    ky = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], np.float32)
    edges = np.asarray(lin.sobel_edges(jnp.asarray(x)))
    assert edges.shape == (1, 6, 7, 6)
    for c in range(3):
        # scipy "mirror" = TF REFLECT (edge pixel not repeated); correlate = cross-correlation.
        dy = ndimage.correlate(x[0, :, :, c], ky, mode="mirror")
        dx = ndimage.correlate(x[0, :, :, c], ky.T, mode="mirror")
        np.testing.assert_allclose(edges[0, :, :, 2 * c], dy, atol=1e-5)  # order: c∂y, c∂x
        np.testing.assert_allclose(edges[0, :, :, 2 * c + 1], dx, atol=1e-5)


def test_sobel_by_hand_on_a_vertical_ramp():
    x = jnp.broadcast_to(jnp.arange(4.0)[None, :, None, None], (1, 4, 3, 1))  # value = row index
    e = lin.sobel_edges(x)
    # Interior rows: (1+2+1)·(r+1 − (r−1)) = 8; edge rows see the reflected neighbour: 0.
    np.testing.assert_array_equal(e[0, :, 1, 0], [0, 8, 8, 0])
    np.testing.assert_array_equal(e[0, :, :, 1], 0.0)


def test_soft_histogram_reference_layout_by_hand():
    x = jnp.asarray([0.3, 0.0, 1.0]).reshape(1, 1, 1, 3)  # R, G, B
    h = np.asarray(lin.soft_histogram(x, 4, "reference"))[0, 0, 0]
    assert h.shape == (15,)  # (K + 1) bins × 3 channels
    by_bin = h.reshape(5, 3)  # bin-major, RGB inner; bins at 0, .25, .5, .75, 1
    np.testing.assert_allclose(by_bin[:, 0], [0, 0.8, 0.2, 0, 0], atol=1e-6)
    np.testing.assert_allclose(by_bin[:, 1], [1, 0, 0, 0, 0])
    np.testing.assert_allclose(by_bin[:, 2], [0, 0, 0, 0, 1])


def test_soft_histogram_tf2_layout_by_hand():
    x = jnp.asarray([0.3, 0.0, 1.0]).reshape(1, 1, 1, 3)
    by_bin = np.asarray(lin.soft_histogram(x, 4, "tf2"))[0, 0, 0].reshape(4, 3)  # bins at 1/8, 3/8, 5/8, 7/8
    np.testing.assert_allclose(by_bin[:, 0], [0.3, 0.7, 0, 0], atol=1e-6)
    np.testing.assert_allclose(by_bin[:, 1], [0.5, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(by_bin[:, 2], [0, 0, 0, 0.5], atol=1e-6)
    with pytest.raises(ValueError, match="histogram_layout"):
        lin.soft_histogram(x, 4, "channel-major")


def test_feature_stack_layout():
    x = jnp.asarray(np.random.default_rng(1).uniform(size=(2, 8, 8, 3)), jnp.float32)
    f = lin.linearization_features(x)
    assert f.shape[-1] == lin.feature_channels() == 102
    np.testing.assert_array_equal(f[..., :3], x)
    np.testing.assert_array_equal(f[..., 3:9], lin.sobel_edges(x))
    np.testing.assert_array_equal(f[..., 9:24], lin.soft_histogram(x, 4))
    np.testing.assert_array_equal(f[..., 24:51], lin.soft_histogram(x, 8))
    np.testing.assert_array_equal(f[..., 51:102], lin.soft_histogram(x, 16))
    # Reference bins form a partition of unity per channel.
    np.testing.assert_allclose(f[..., 9:24].reshape(2, 8, 8, 5, 3).sum(3), 1.0, atol=1e-5)
    assert lin.linearization_features(x, "tf2").shape[-1] == lin.feature_channels("tf2") == 93


# ----------------------------------------------------------------------------- network


def test_parameter_counts_and_names(variables):
    params, stats = variables["params"], variables["batch_stats"]

    def count(tree):
        return sum(a.size for a in jax.tree.leaves(tree))

    assert count(params["crf_feature_net"]) == lin.N_TRUNK_PARAMS == 1_195_328
    assert count(params["ae_invcrf_decode_net"]) == lin.N_HEAD_PARAMS == 5_643
    assert params["ae_invcrf_decode_net"]["dense"]["kernel"].shape == (512, 11)
    # §2.2.2 / §2.5: 18 convs (only conv1 has a bias) and 18 batch norms, Caffe names.
    expected = lin.crf_feature_net_layers()
    trunk = params["crf_feature_net"]
    assert set(trunk) == set(expected) and len(expected) == 36
    for name, shapes in expected.items():
        if "weights" in shapes:
            assert trunk[name]["kernel"].shape == shapes["weights"], name
            assert set(trunk[name]) == ({"kernel", "bias"} if name == "conv1" else {"kernel"}), name
        else:
            assert set(trunk[name]) == {"scale", "bias"}, name
            assert set(stats["crf_feature_net"][name]) == {"mean", "var"}, name
    assert len(jax.tree.leaves(params)) == 18 + 1 + 2 * 18 + 2
    assert set(stats) == {"crf_feature_net"} and len(jax.tree.leaves(stats)) == 2 * 18


def test_tf2_layout_changes_only_conv1():
    shapes = jax.eval_shape(
        LinearizationNet(basis=synthetic_basis(), histogram_layout="tf2").init, KEY, jnp.zeros((1, 32, 32, 3))
    )
    assert shapes["params"]["crf_feature_net"]["conv1"]["kernel"].shape == (7, 7, 93, 64)


def test_output_is_a_monotone_inverse_crf(apply, variables):
    _, ldr = smooth_batch()
    g = apply(variables, ldr)
    assert g.shape == (2, 1024) and g.dtype == jnp.float32
    np.testing.assert_allclose(g[:, 0], 0.0, atol=1e-7)
    np.testing.assert_allclose(g[:, -1], 1.0, atol=1e-5)
    assert np.all(np.diff(np.asarray(g), axis=-1) >= 0)
    # Still monotone when the head emits large, wiggly PCA weights.
    wild = jax.tree.map(lambda a: a, variables)
    wild["params"]["ae_invcrf_decode_net"]["dense"]["bias"] = jnp.asarray(np.linspace(-50, 50, 11), jnp.float32)
    g = apply(wild, ldr)
    assert np.all(np.diff(np.asarray(g), axis=-1) >= 0) and np.all(np.isfinite(g))


def test_batch_norm_train_updates_stats_and_eval_uses_running_averages(net, apply, variables):
    _, ldr = smooth_batch()
    g_train, updated = jax.jit(lambda v, x: net.apply(v, x, train=True, mutable=["batch_stats"]))(variables, ldr)
    before = variables["batch_stats"]["crf_feature_net"]["bn_conv1"]
    after = updated["batch_stats"]["crf_feature_net"]["bn_conv1"]
    assert not np.allclose(before["mean"], after["mean"])
    # Running averages move by (1 - 0.999) towards the batch moments.
    assert np.abs(np.asarray(after["mean"]) - np.asarray(before["mean"])).max() < 0.01
    g_eval = apply(variables, ldr)
    assert not np.allclose(g_train, g_eval)
    # Inference normalisation is per sample: a batch gives what each image gives alone.
    np.testing.assert_allclose(apply(variables, ldr[:1]), g_eval[:1], atol=1e-5)


def test_basis_is_a_constant_and_can_be_passed_per_call(net, apply, variables):
    _, ldr = smooth_batch()
    basis = synthetic_basis()

    def curve(mean):
        b = types.SimpleNamespace(mean=mean, components=basis.components)
        return net.apply(variables, ldr, basis=b)

    @jax.jit
    def probe(mean):
        g, vjp = jax.vjp(curve, mean)
        return g, vjp(jnp.ones_like(g))[0], curve(mean**2)

    g, grad, g_other = probe(jnp.asarray(basis.mean))
    np.testing.assert_array_equal(grad, 0.0)  # no gradient reaches the basis
    # A call argument overrides the attribute: a basis with a different mean moves the curve.
    np.testing.assert_allclose(g, apply(variables, ldr), atol=1e-6)
    assert not np.allclose(g_other, g)
    # Nor is it stored among the variables (no 1024-sample array anywhere).
    assert set(variables) == {"params", "batch_stats"}
    assert all(1024 not in a.shape for a in jax.tree.leaves(variables))


def test_basis_with_too_few_components_is_rejected(variables):
    _, ldr = smooth_batch()
    with pytest.raises(ValueError, match="components"):
        jax.eval_shape(LinearizationNet(basis=synthetic_basis(5)).apply, variables, ldr)


def test_without_a_basis_the_package_default_is_used(variables):
    from hdrjax.camera import basis as basis_lib

    feature = jnp.asarray(np.random.default_rng(3).normal(size=(2, 512)), jnp.float32)

    def curve(net):
        return jax.jit(lambda v, f: net.apply(v, f, method="curve_from_feature"))(variables, feature)

    np.testing.assert_array_equal(curve(LinearizationNet()), curve(LinearizationNet(basis=basis_lib.default_basis(11))))
    assert not np.allclose(curve(LinearizationNet()), curve(LinearizationNet(basis=synthetic_basis())))


def test_real_inverse_emor_basis_gives_monotone_curves(variables, shared_data):
    data = np.load(shared_data("singlehdr", "invemor.npz"))
    net = LinearizationNet(basis=types.SimpleNamespace(mean=data["g0"], components=data["hinv"]))
    g = jax.jit(net.apply)(variables, smooth_batch()[1])
    assert np.all(np.diff(np.asarray(g), axis=-1) >= 0)
    np.testing.assert_allclose(g[:, [0, -1]], [[0, 1], [0, 1]], atol=1e-5)


def test_linearize_is_the_curve_lookup():
    ramp = jnp.linspace(0, 1, 1024)[None]
    x = jnp.asarray(np.random.default_rng(2).uniform(size=(1, 4, 4, 3)), jnp.float32)
    np.testing.assert_allclose(lin.linearize(x, ramp), x, atol=1e-6)
    np.testing.assert_allclose(lin.linearize(x, ramp**2), x**2, atol=1e-5)


# ----------------------------------------------------------------------------- crf_net_v2.npy


def _write_crf_net_v2(path, *, drop=None, reshape=None):
    """A synthetic caffe-tensorflow dict with the keys of `crf_net_v2.npy` (3-channel conv1, fc11)."""
    rng = np.random.default_rng(0)
    table = {}
    for layer, keys in lin.crf_feature_net_layers(in_channels=3).items():
        table[layer] = {k: rng.normal(size=s).astype(np.float32) for k, s in keys.items()}
        if "variance" in table[layer]:
            table[layer]["variance"] = np.abs(table[layer]["variance"]) + 0.5
    table["fc11"] = {"weights": rng.normal(size=(512, 11)).astype(np.float32), "biases": np.zeros(11, np.float32)}
    if drop:
        del table[drop]
    if reshape:
        table[reshape]["weights"] = table[reshape]["weights"][..., :-1]
    np.save(path, np.array(table, dtype=object), allow_pickle=True)
    return table


def test_load_crf_net_v2_maps_caffe_keys(tmp_path, apply, variables):
    path = tmp_path / "crf_net_v2.npy"
    table = _write_crf_net_v2(path)
    loaded = lin.load_crf_net_v2(path)
    params, stats = loaded["params"]["crf_feature_net"], loaded["batch_stats"]["crf_feature_net"]
    assert "conv1" not in params and "fc11" not in params  # skipped as in the reference
    np.testing.assert_array_equal(params["res3a_branch2b"]["kernel"], table["res3a_branch2b"]["weights"])
    np.testing.assert_array_equal(params["bn2b_branch2c"]["scale"], table["bn2b_branch2c"]["scale"])
    np.testing.assert_array_equal(params["bn2b_branch2c"]["bias"], table["bn2b_branch2c"]["offset"])
    np.testing.assert_array_equal(stats["bn3b_branch2a"]["mean"], table["bn3b_branch2a"]["mean"])
    np.testing.assert_array_equal(stats["bn3b_branch2a"]["var"], table["bn3b_branch2a"]["variance"])

    merged = lin.merge_variables(variables, loaded)
    trunk = merged["params"]["crf_feature_net"]
    np.testing.assert_array_equal(trunk["res2a_branch1"]["kernel"], table["res2a_branch1"]["weights"])
    # conv1 (102-channel input here) and the head keep their initial values.
    np.testing.assert_array_equal(trunk["conv1"]["kernel"], variables["params"]["crf_feature_net"]["conv1"]["kernel"])
    assert merged["params"]["ae_invcrf_decode_net"] is variables["params"]["ae_invcrf_decode_net"]
    g = apply(merged, smooth_batch()[1])
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize(
    "kwargs,match",
    [({"drop": "bn3b_branch2c"}, "bn3b_branch2c"), ({"reshape": "res2b_branch2a"}, "res2b_branch2a/weights")],
)
def test_load_crf_net_v2_rejects_mismatched_files(tmp_path, kwargs, match):
    path = tmp_path / "crf_net_v2.npy"
    _write_crf_net_v2(path, **kwargs)
    with pytest.raises(WeightFileError, match=match) as info:
        lin.load_crf_net_v2(path)
    assert str(path) in str(info.value) and info.value.path == str(path)


def test_load_crf_net_v2_rejects_non_dict_and_garbage(tmp_path):
    arr = tmp_path / "array.npy"
    np.save(arr, np.zeros(3))
    with pytest.raises(WeightFileError, match="dict"):
        lin.load_crf_net_v2(arr)
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not a numpy file")
    with pytest.raises(WeightFileError, match="junk.npy"):
        lin.load_crf_net_v2(junk)


def test_merge_variables_checks_shapes(variables):
    bad = {"params": {"ae_invcrf_decode_net": {"dense": {"bias": np.zeros(12, np.float32)}}}}
    with pytest.raises(ValueError, match="dense/bias"):
        lin.merge_variables(variables, bad)
    with pytest.raises(KeyError, match="nonexistent"):
        lin.merge_variables(variables, {"params": {"nonexistent": {}}})


# ----------------------------------------------------------------------------- training


@pytest.mark.slow
def test_overfits_a_tiny_batch(net, variables):
    linear, ldr = smooth_batch()
    g_true = np.tile((np.linspace(0, 1, 1024) ** 2.2).astype(np.float32), (2, 1))
    params, stats = variables["params"], variables["batch_stats"]
    opt = optax.adam(optax.cosine_decay_schedule(2e-3, 40))
    state = opt.init(params)

    def loss_fn(p, s):  # the reference's stage loss: image MSE + 0.1 · curve MSE
        g, updated = net.apply({"params": p, "batch_stats": s}, ldr, train=True, mutable=["batch_stats"])
        loss = jnp.mean((lin.linearize(ldr, g) - linear) ** 2) + 0.1 * jnp.mean((g - g_true) ** 2)
        return loss, updated["batch_stats"]

    @jax.jit
    def step(p, s, st):
        (loss, s), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, s)
        updates, st = opt.update(grads, st, p)
        return optax.apply_updates(p, updates), s, st, loss

    losses = []
    for _ in range(40):
        params, stats, state, loss = step(params, stats, state)
        losses.append(float(loss))
    assert losses[-1] * 10 <= losses[0], losses


# ------------------------------------------------------------- head options (recipe, ours)


def test_zero_head_starts_at_the_mean_curve_and_scale_multiplies_the_weights():
    basis = synthetic_basis()
    head = lin.AEInvcrfDecodeNet(coefficient_scale=4.0, head_init="zeros")
    feature = jnp.asarray(np.random.default_rng(0).normal(size=(3, 512)), jnp.float32)
    v = head.init(KEY, feature, basis)
    np.testing.assert_allclose(head.apply(v, feature, basis), np.broadcast_to(basis.mean, (3, 1024)), atol=1e-6)
    # With weights w the curve is mean + 4 w @ C: the same as scale 1 with 4 w.
    v = jax.tree.map(lambda x: jnp.full_like(x, 0.01), v)
    scaled = head.apply(v, feature, basis)
    plain = lin.AEInvcrfDecodeNet().apply(jax.tree.map(lambda x: 4 * x, v), feature, basis)
    np.testing.assert_allclose(scaled, plain, atol=1e-5)
    with pytest.raises(ValueError, match="head_init"):
        lin.AEInvcrfDecodeNet(head_init="ones").init(KEY, feature, basis)


def test_net_passes_the_monotone_mode_to_the_projection(variables):
    # The mode acts after the trunk: the head and projection alone show it (no new compile
    # of the ResNet trunk per mode).
    basis = synthetic_basis()
    feature = jnp.asarray(np.random.default_rng(0).normal(size=(2, 512)), jnp.float32)
    v = jax.tree.map(lambda a: a, variables)  # new dicts, same arrays
    # A head that emits a large wiggle: the two projections differ.
    v["params"]["ae_invcrf_decode_net"]["dense"]["bias"] = jnp.asarray([0.0] * 10 + [3.0])
    curves = {}
    for mode in ("shift", "clip"):
        net = LinearizationNet(basis=basis, monotone=mode)
        curves[mode] = np.asarray(jax.jit(lambda v, f: net.apply(v, f, method="curve_from_feature"))(v, feature))
        assert np.all(np.diff(curves[mode], axis=-1) >= -1e-6)
    assert np.abs(curves["shift"] - curves["clip"]).max() > 0.01


def test_net_dark_end_prior_replaces_the_curve_below_the_code_only(variables):
    from hdrjax.camera import crf

    basis = synthetic_basis()
    feature = jnp.asarray(np.random.default_rng(0).normal(size=(2, 512)), jnp.float32)
    v = jax.tree.map(lambda a: a, variables)
    v["params"]["ae_invcrf_decode_net"]["dense"]["bias"] = jnp.asarray([0.0] * 10 + [3.0])
    curves = {}
    for end in ("network", "prior"):
        net = LinearizationNet(basis=basis, monotone="clip", dark_end=end, dark_end_code=16)
        curves[end] = np.asarray(net.apply(v, feature, method="curve_from_feature"))
    knot = crf.code_sample(16)
    np.testing.assert_array_equal(curves["prior"][:, knot:], curves["network"][:, knot:])
    shape = crf.dark_end_shape()
    expected = shape[None, :knot] * curves["network"][:, knot:knot + 1] / shape[knot]
    np.testing.assert_allclose(curves["prior"][:, :knot], expected, rtol=1e-5, atol=1e-9)
    assert not np.allclose(curves["prior"][:, :knot], curves["network"][:, :knot])
    with pytest.raises(ValueError, match="dark_end"):
        LinearizationNet(basis=basis, dark_end="sky").apply(v, feature, method="curve_from_feature")
