"""grain training iterator and eval set on the procedural source; patching and augmentation."""
import numpy as np
import pytest

from hdrjax import data
from hdrjax.data import transforms
from hdrjax.data.config import DataError, default_config, validate_config
from hdrjax.data.procedural import procedural_scene


def small_config(**overrides):
    c = default_config()
    c.patch_size = 16
    c.eval_patch_size = 16
    c.num_threads = 0
    c.procedural.num_train_scenes = 64
    for k, v in overrides.items():
        c[k] = v
    return c


def take(it, n):
    return [next(it) for _ in range(n)]


# ------------------------------------------------------------------------- transforms

def test_resize_short_side_and_reference_crops():
    img = np.random.default_rng(0).random((30, 75, 3)).astype(np.float32)
    out = transforms.resize_short_side(img, 20, "area")
    assert out.shape == (20, 50, 3)  # factor max(20/30, 20/75), rounded sizes
    first, last = (transforms.reference_crop(out, k, 20) for k in (0, 1))
    np.testing.assert_array_equal(first, out[:, :20])
    np.testing.assert_array_equal(last, out[:, -20:])
    portrait = np.transpose(out, (1, 0, 2))
    np.testing.assert_array_equal(transforms.reference_crop(portrait, 1, 20), portrait[-20:])
    assert transforms.resize_short_side(img, 60, "linear").shape == (60, 150, 3)


def test_area_and_linear_differ_only_when_shrinking():
    img = np.random.default_rng(1).random((40, 40, 3)).astype(np.float32)
    area = transforms.resize(img, 17, 17, "area")
    linear = transforms.resize(img, 17, 17, "linear")
    assert not np.allclose(area, linear)  # the reference's INTER_AREA intent vs its bilinear
    # Area averaging keeps the mean of a shrunk image; enlarging is bilinear either way.
    assert abs(area.mean() - img.mean()) < abs(linear.mean() - img.mean()) + 1e-3
    np.testing.assert_array_equal(transforms.resize(img, 57, 57, "area"),
                                  transforms.resize(img, 57, 57, "linear"))


def test_mean_normalize():
    x = np.random.default_rng(2).random((8, 8, 3)).astype(np.float32) * 40
    y = transforms.mean_normalize(x)
    assert y.dtype == np.float32
    assert y.mean() == pytest.approx(0.5, rel=1e-5)
    np.testing.assert_allclose(y, x / (x.mean() + 1e-6) * 0.5, rtol=1e-5)


def test_random_rescale_crop_and_flips_are_seeded():
    patch = np.random.default_rng(3).random((64, 64, 3)).astype(np.float32)
    kw = dict(patch_size=24, scale_range=(0.5, 2.0), interpolation="area")
    a = transforms.random_rescale_crop(patch, np.random.default_rng(5), **kw)
    b = transforms.random_rescale_crop(patch, np.random.default_rng(5), **kw)
    assert a.shape == (24, 24, 3)
    np.testing.assert_array_equal(a, b)
    # Flip/rotation: the same draw applies to every array; the values are a permutation.
    x, y = transforms.random_rotate_flip([patch, patch * 2], np.random.default_rng(6))
    np.testing.assert_array_equal(y, x * 2)
    np.testing.assert_array_equal(np.sort(x, axis=None), np.sort(patch, axis=None))
    seen = {transforms.random_rotate_flip([patch], np.random.default_rng(s))[0].tobytes()
            for s in range(64)}
    assert len(seen) == 8  # the eight symmetries of the square


# ------------------------------------------------------------------------- config checks

def test_default_config_is_valid_and_documented():
    c = default_config()
    validate_config(c, global_batch_size=8)
    assert c.name == "procedural" and c.patch_size == 256 and c.crop_size_reference == 512
    assert c.short_side == 512 and tuple(c.scale_range) == (0.5, 2.0)
    assert c.resize_interpolation == "area"


@pytest.mark.parametrize("field,value,needle", [
    ("name", "imagenet", "unknown dataset"),
    ("resize_interpolation", "cubic", "resize_interpolation"),
    ("patch_size", 0, "patch_size"),
    ("crop_size_reference", 600, "crop_size_reference"),
])
def test_bad_fields_are_named(field, value, needle):
    c = default_config()
    c[field] = value
    with pytest.raises(DataError, match=needle):
        validate_config(c)


def test_file_dataset_needs_manual_dir_and_scale_fits_patch():
    c = default_config()
    c.name = "hdr_folder"
    with pytest.raises(DataError, match="manual_dir"):
        data.make_train_iterator(c, global_batch_size=2, seed=0)
    c.manual_dir = "/nonexistent/hdr"
    c.patch_size = 300  # 512 * 0.5 < 300: the smallest rescaled patch cannot hold a crop
    with pytest.raises(DataError, match="scale_range"):
        validate_config(c)
    with pytest.raises(DataError, match="multiple of process_count"):
        validate_config(default_config(), global_batch_size=6, process_count=4)


# ------------------------------------------------------------------------- train iterator

def test_shapes_dtypes_and_mean_normalisation():
    it = data.make_train_iterator(small_config(num_threads=2), global_batch_size=4, seed=0)
    batch = next(it)
    assert set(batch) == {"hdr"}
    assert batch["hdr"].shape == (4, 16, 16, 3) and batch["hdr"].dtype == np.float32
    np.testing.assert_allclose(batch["hdr"].mean(axis=(1, 2, 3)), 0.5, rtol=1e-4)


def test_elements_are_the_scenes():
    # Each element is a mean-normalised procedural scene; one epoch covers every scene once.
    c = small_config()
    c.procedural.num_train_scenes = 6
    it = data.make_train_iterator(c, global_batch_size=2, seed=0)
    got = np.concatenate([b["hdr"] for b in take(it, 3)])
    want = np.stack([transforms.mean_normalize(procedural_scene(0, i, 16)) for i in range(6)])
    order = [int(np.argmin(np.abs(want - g).sum((1, 2, 3)))) for g in got]
    assert sorted(order) == list(range(6))
    np.testing.assert_allclose(got, want[order], rtol=1e-6)
    assert order != list(range(6))  # shuffled


def test_deterministic_from_seed_and_independent_of_threads():
    a = take(data.make_train_iterator(small_config(), global_batch_size=3, seed=5), 3)
    b = take(data.make_train_iterator(small_config(num_threads=3), global_batch_size=3, seed=5),
             3)
    c = take(data.make_train_iterator(small_config(), global_batch_size=3, seed=6), 3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["hdr"], y["hdr"])
    assert not all(np.array_equal(x["hdr"], z["hdr"]) for x, z in zip(a, c))


def test_processes_read_disjoint_shards():
    c = small_config()
    c.procedural.num_train_scenes = 8
    seen = []
    for p in range(2):
        it = data.make_train_iterator(c, global_batch_size=4, seed=0, process_index=p,
                                      process_count=2)
        batches = take(it, 2)  # one epoch of this process's 4 scenes
        assert batches[0]["hdr"].shape == (2, 16, 16, 3)  # per-process batch = 4 / 2
        seen.append({x.tobytes() for b in batches for x in b["hdr"]})
    assert len(seen[0]) == len(seen[1]) == 4
    assert not seen[0] & seen[1]
    want = {transforms.mean_normalize(procedural_scene(0, i, 16)).tobytes() for i in range(8)}
    assert seen[0] | seen[1] == want


def test_get_state_set_state_resumes_exactly():
    c = small_config(num_threads=2)
    c.procedural.num_train_scenes = 10  # crosses epoch boundaries (reshuffled each epoch)
    c.procedural.augment = True
    it = data.make_train_iterator(c, global_batch_size=4, seed=1)
    take(it, 2)
    state = it.get_state()
    expected = take(it, 4)
    fresh = data.make_train_iterator(c, global_batch_size=4, seed=1)
    fresh.set_state(state)
    for x, y in zip(expected, take(fresh, 4)):
        np.testing.assert_array_equal(x["hdr"], y["hdr"])
    # ...and restoring an earlier state rewinds the same iterator.
    it.set_state(state)
    np.testing.assert_array_equal(next(it)["hdr"], expected[0]["hdr"])


def test_bad_process_index():
    with pytest.raises(DataError, match="process_index"):
        data.make_train_iterator(small_config(), global_batch_size=4, seed=0, process_index=2,
                                 process_count=2)


# ------------------------------------------------------------------------- eval set

def test_eval_dataset_is_fixed_and_disjoint_from_training():
    c = small_config()
    c.procedural.num_test_scenes = 5
    ev = data.make_eval_dataset(c)
    assert len(ev) == 5
    items = list(ev)
    again = data.make_eval_dataset(c)  # built again: the same test set
    for a, b in zip(items, again):
        np.testing.assert_array_equal(a["hdr"], b["hdr"])
        assert a["name"] == b["name"]
    assert items[0]["hdr"].shape == (16, 16, 3)
    np.testing.assert_allclose([x["hdr"].mean() for x in items], 0.5, rtol=1e-4)
    train = {transforms.mean_normalize(procedural_scene(0, i, 16)).tobytes() for i in range(5)}
    assert not train & {x["hdr"].tobytes() for x in items}
    assert len(data.make_eval_dataset(c, num_patches=2)) == 2
    batches = list(ev.batches(2))
    assert [b["hdr"].shape[0] for b in batches] == [2, 2, 1]
    assert batches[0]["name"] == [items[0]["name"], items[1]["name"]]
    np.testing.assert_array_equal(batches[2]["hdr"][0], items[4]["hdr"])
    np.testing.assert_array_equal(ev[1:3][1]["hdr"], items[2]["hdr"])


@pytest.mark.slow
def test_worker_processes_give_the_same_stream_and_resume():
    # Workers start Python + jax: slow on a small CPU, hence `slow`.
    c = small_config(num_workers=2)
    it = data.make_train_iterator(c, global_batch_size=2, seed=3)
    first = take(it, 3)
    state = it.get_state()
    rest = take(it, 2)
    ref = take(data.make_train_iterator(small_config(), global_batch_size=2, seed=3), 5)
    for x, y in zip(first + rest, ref):
        np.testing.assert_array_equal(x["hdr"], y["hdr"])
    fresh = data.make_train_iterator(c, global_batch_size=2, seed=3)
    fresh.set_state(state)
    for x, y in zip(rest, take(fresh, 2)):
        np.testing.assert_array_equal(x["hdr"], y["hdr"])
    del it, fresh
