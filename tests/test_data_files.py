"""File datasets: hdr_folder (real panoramas, synthetic files), hdr_real pairs, hdr_synth lists,
and their TFDS array_record builders (prepared into a temporary data_dir, no TensorFlow)."""
import os

import numpy as np
import pytest
from hdrjax import data, io
from hdrjax.data import __main__ as cli
from hdrjax.data import sources, transforms
from hdrjax.data.config import DataError, default_config

# interior.exr holds one negative value; the reader's warning about it is expected here.
pytestmark = pytest.mark.filterwarnings("ignore::hdrjax.io.NonFiniteWarning")

# Three small-ish real panoramas (1024x512): a sky, a night scene and an EXR interior.
REAL_FILES = ("sky.hdr", "dikhololo_night_1k.hdr", "interior.exr")


def write_hdrs(folder, names, size=(24, 40), seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        io.write_image(folder / name, (rng.random((*size, 3)) * 50).astype(np.float32))
    return folder


def folder_config(folder, tmp_path, **overrides):
    c = default_config()
    c.name = "hdr_folder"
    c.manual_dir = str(folder)
    c.data_dir = str(tmp_path / "tfds")
    c.num_threads = 0
    for k, v in overrides.items():
        c[k] = v
    return c


# ------------------------------------------------------------------------- hdr_folder, real data

@pytest.fixture(scope="module")
def real_folder(tmp_path_factory, shared_data):
    src = shared_data("train_hdr")
    folder = tmp_path_factory.mktemp("train_hdr_subset")
    for name in REAL_FILES:
        os.symlink(src / name, folder / name)
    return folder


def test_hdr_folder_panorama_pipeline_on_real_panoramas(real_folder, tmp_path):
    c = folder_config(real_folder, tmp_path, patch_size=32, eval_patch_size=24)
    c.split.test_names = ("sky",)
    c.panorama.enabled = True
    c.panorama.views_per_image = 4
    c.panorama.eval_views = 3
    builder = data.prepare(c)
    assert builder.info.splits["train"].num_examples == 2
    assert builder.info.splits["test"].num_examples == 1
    # The prepared record is the file as read (these are already 512 high: no resize).
    records = {r["name"]: r for r in map(sources._normalize_record, builder.as_data_source("train"))}
    assert set(records) == {"dikhololo_night_1k", "interior"}
    np.testing.assert_array_equal(records["interior"]["hdr"],
                                  io.read_image(real_folder / "interior.exr"))

    it = data.make_train_iterator(c, global_batch_size=4, seed=0)
    batches = [next(it) for _ in range(3)]
    for b in batches:
        assert b["hdr"].shape == (4, 32, 32, 3) and b["hdr"].dtype == np.float32
        assert np.isfinite(b["hdr"]).all() and b["hdr"].min() >= 0
        np.testing.assert_allclose(b["hdr"].mean(axis=(1, 2, 3)), 0.5, rtol=1e-4)
    # Real HDR: views into a night scene and an interior with lamps reach far above the mean.
    assert max(b["hdr"].max() for b in batches) > 20

    ev = data.make_eval_dataset(c)
    assert [e["name"] for e in ev] == ["sky_0", "sky_1", "sky_2"]
    assert ev[0]["hdr"].shape == (24, 24, 3)
    # Eval view 0 is yaw 0 / pitch 0 of the test panorama, rendered from the file itself.
    from hdrjax.data.panorama import render_view
    expected = render_view(io.read_image(real_folder / "sky.hdr"), 24, c.panorama.eval_fov, 0, 0)
    np.testing.assert_allclose(ev[0]["hdr"], transforms.mean_normalize(expected), rtol=1e-5)


def test_hdr_folder_reference_patching_with_file_backend(real_folder, tmp_path):
    # Reference mode (§1.1/§1.2) read straight from the files, scaled down for speed.
    c = folder_config(real_folder, tmp_path, backend="files", short_side=64,
                      crop_size_reference=64, patch_size=32, eval_patch_size=64)
    c.split.test_fraction = 0.34
    it = data.make_train_iterator(c, global_batch_size=2, seed=0)
    b = next(it)
    assert b["hdr"].shape == (2, 32, 32, 3)
    ev = data.make_eval_dataset(c)
    assert len(ev) == 2  # one test image, two 64x64 reference crops
    names = [e["name"] for e in ev]
    stem = names[0][:-2]
    assert names == [f"{stem}_0", f"{stem}_1"]
    path = next(real_folder.glob(stem + ".*"))
    small = transforms.resize_short_side(io.read_image(path), 64, "area")
    assert small.shape == (64, 128, 3)
    np.testing.assert_allclose(ev[1]["hdr"], transforms.mean_normalize(small[:, -64:]), rtol=1e-5)


# ------------------------------------------------------------------------- hdr_folder, synthetic

def test_hdr_folder_split_rules(tmp_path):
    folder = write_hdrs(tmp_path / "h", [f"im{i}.hdr" for i in range(10)] + ["x.exr"])
    (folder / "notes.txt").write_text("not an image")
    split = sources.hdr_folder_split(folder, test_fraction=0.2, seed=1)
    assert len(split["train"]) == 9 and len(split["test"]) == 2
    assert not set(split["train"]) & set(split["test"])
    assert split == sources.hdr_folder_split(folder, test_fraction=0.2, seed=1)
    named = sources.hdr_folder_split(folder, test_names=("im3", "x.exr"))
    assert [p.name for p in named["test"]] == ["im3.hdr", "x.exr"]
    with pytest.raises(DataError, match="not there: nope"):
        sources.hdr_folder_split(folder, test_names=("nope",))


def test_hdr_folder_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        sources.hdr_folder_split(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .hdr/.exr files"):
        sources.hdr_folder_split(tmp_path / "empty")
    one = write_hdrs(tmp_path / "one", ["a.hdr"])
    with pytest.raises(DataError, match="too few images"):
        sources.hdr_folder_split(one, test_fraction=0.5)
    c = folder_config(tmp_path / "empty", tmp_path)
    with pytest.raises(DataError, match="no .hdr/.exr"):
        data.make_train_iterator(c, global_batch_size=2, seed=0)
    assert not (tmp_path / "tfds" / "hdr_folder").exists()  # nothing half-prepared


def test_prepared_copy_depends_on_resize_and_split(tmp_path):
    folder = write_hdrs(tmp_path / "h", ["a.hdr", "b.hdr", "c.hdr"], size=(48, 80))
    c = folder_config(folder, tmp_path, short_side=32, crop_size_reference=32, patch_size=16)
    c.split.test_names = ("c",)
    b1 = data.prepare(c)
    rec = sources._normalize_record(b1.as_data_source("train")[0])
    assert rec["hdr"].shape == (32, 53, 3)  # 48x80 -> short side 32, round(80 * 32/48)
    ref = transforms.resize_short_side(io.read_image(folder / f"{rec['name']}.hdr"), 32, "area")
    np.testing.assert_array_equal(rec["hdr"], ref)
    c.resize_interpolation = "linear"
    b2 = data.prepare(c)
    assert b2.data_path != b1.data_path
    c.split.test_names = ("b",)
    assert data.prepare(c).data_path not in (b1.data_path, b2.data_path)


def test_not_prepared_and_prepare_disabled(tmp_path):
    folder = write_hdrs(tmp_path / "h", ["a.hdr", "b.hdr"])
    c = folder_config(folder, tmp_path, prepare=False)
    with pytest.raises(DataError, match="not prepared"):
        data.make_train_iterator(c, global_batch_size=2, seed=0)


def test_no_test_split(tmp_path):
    folder = write_hdrs(tmp_path / "h", ["a.hdr", "b.hdr"])
    c = folder_config(folder, tmp_path, short_side=16, crop_size_reference=16, patch_size=8,
                      eval_patch_size=16)
    c.split.test_fraction = 0.0
    assert set(data.prepare(c).info.splits) == {"train"}
    with pytest.raises(DataError, match="no 'test' split"):
        data.make_eval_dataset(c)


# ------------------------------------------------------------------------- hdr_real

def write_pairs(root, names, *, ldr_names=None, size=(40, 48), seed=0):
    rng = np.random.default_rng(seed)
    (root / "HDR_gt").mkdir(parents=True)
    (root / "LDR_in").mkdir(parents=True)
    for name, ldr_name in zip(names, ldr_names or names):
        pattern = rng.random((*size, 3)).astype(np.float32)
        io.write_image(root / "HDR_gt" / f"{name}.hdr", 1.0 + 4.0 * pattern)
        io.write_image(root / "LDR_in" / f"{ldr_name}.png", pattern)  # lossless stand-in
    return root


def test_hdr_real_pairing_rules(tmp_path):
    root = write_pairs(tmp_path / "ok", ["001", "002"])
    pairs = sources.hdr_real_pairs(root)
    assert [(hdr.name, ldr.name) for hdr, ldr in pairs] == [("001.hdr", "001.png"), ("002.hdr", "002.png")]
    bad = write_pairs(tmp_path / "bad", ["001", "002"], ldr_names=["001", "003"])
    with pytest.raises(DataError, match="002.hdr / 003.png"):
        sources.hdr_real_pairs(bad)
    assert len(sources.hdr_real_pairs(bad, match_names=False)) == 2  # the reference's rule
    os.remove(bad / "LDR_in" / "003.png")
    with pytest.raises(DataError, match="2 files in HDR_gt but 1 in LDR_in"):
        sources.hdr_real_pairs(bad)
    with pytest.raises(DataError, match="HDR_gt"):
        sources.hdr_real_pairs(tmp_path)


def test_hdr_real_size_mismatch(tmp_path):
    root = write_pairs(tmp_path / "r", ["a"])
    io.write_image(root / "LDR_in" / "a.png", np.zeros((8, 8, 3), np.float32))
    with pytest.raises(DataError, match="a.hdr: HDR is 48x40"):
        sources.load_pair(*sources.hdr_real_pairs(root)[0])


def test_hdr_real_builder_and_iterator(tmp_path):
    manual = tmp_path / "real"
    write_pairs(manual / "train", ["a", "b", "c"])
    write_pairs(manual / "test", ["t"], size=(36, 44), seed=1)
    c = default_config()
    c.name, c.manual_dir, c.data_dir = "hdr_real", str(manual), str(tmp_path / "tfds")
    c.patch_size, c.eval_patch_size, c.num_threads = 16, 32, 0
    c.real.patches_per_image = 2
    builder = data.prepare(c)
    assert builder.info.splits["train"].num_examples == 3
    rec = sources._normalize_record(builder.as_data_source("test")[0])
    assert rec["ldr"].dtype == np.uint8 and rec["ldr"].shape == (36, 44, 3)
    np.testing.assert_array_equal(rec["ldr"],
                                  np.round(io.read_image(manual / "test/LDR_in/t.png") * 255))

    batch = next(data.make_train_iterator(c, global_batch_size=4, seed=0))
    assert batch["hdr"].shape == batch["ldr"].shape == (4, 16, 16, 3)
    assert 0 <= batch["ldr"].min() and batch["ldr"].max() <= 1
    for hdr, ldr in zip(batch["hdr"], batch["ldr"]):
        # HDR = 1 + 4 * pattern and LDR = pattern (8 bit): the same crop and flips were
        # applied to both, up to the HDR's mean normalisation.
        model = 1.0 + 4.0 * ldr
        scale = hdr.mean() / model.mean()
        np.testing.assert_allclose(hdr, model * scale, rtol=0.02, atol=0.02 * scale)
        assert hdr.mean() == pytest.approx(0.5, rel=1e-4)

    ev = list(data.make_eval_dataset(c))
    assert [e["name"] for e in ev] == ["t_0", "t_1"]
    np.testing.assert_allclose(ev[0]["ldr"], rec["ldr"][2:34, :32] / 255.0, atol=1e-6)
    c.eval_patch_size = 40
    with pytest.raises(DataError, match="smaller than config.data.eval_patch_size 40"):
        data.make_eval_dataset(c)[0]


# ------------------------------------------------------------------------- hdr_synth

def test_hdr_synth_lists_are_embedded():
    train, test = sources.hdr_synth_list("train"), sources.hdr_synth_list("test")
    assert len(train) == 503 and len(test) == 60 and not set(train) & set(test)
    assert train[0] == "funt/hdr/S0350.hdr"
    assert "hdr_eye/images/HDR/C45_HDR.hdr" in test
    assert sum(p.endswith(".exr") for p in train) == 107


def test_hdr_synth_missing_files_are_reported(tmp_path):
    with pytest.raises(DataError, match="503 hdr_synth train images are missing"):
        sources.hdr_synth_files(tmp_path, "train")


def test_hdr_synth_builder_on_a_tiny_list(tmp_path, monkeypatch):
    lists = {"train": ["a/x.hdr", "a/y.exr"], "test": ["b/z.hdr"]}
    monkeypatch.setattr(sources, "hdr_synth_list", lambda split: lists[split])
    manual = tmp_path / "synth"
    write_hdrs(manual / "a", ["x.hdr", "y.exr"], size=(20, 30))
    write_hdrs(manual / "b", ["z.hdr"], size=(30, 20))
    c = default_config()
    c.name, c.manual_dir, c.data_dir = "hdr_synth", str(manual), str(tmp_path / "tfds")
    c.short_side = c.crop_size_reference = 16
    c.patch_size, c.eval_patch_size, c.num_threads = 8, 16, 0
    builder = data.prepare(c)
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 2, "test": 1}
    assert next(data.make_train_iterator(c, global_batch_size=2, seed=0))["hdr"].shape == \
        (2, 8, 8, 3)
    ev = list(data.make_eval_dataset(c))
    assert len(ev) == 2 and ev[0]["hdr"].shape == (16, 16, 3)  # portrait: first/last rows
    assert [e["name"] for e in ev] == ["b/z_0", "b/z_1"]  # stems repeat across HDR-Synth folders
    c.backend = "files"
    assert [e["name"] for e in data.make_eval_dataset(c)] == ["b/z_0", "b/z_1"]


# ------------------------------------------------------------------------- command line

def test_cli_prepare_and_errors(tmp_path, capsys):
    folder = write_hdrs(tmp_path / "h", ["a.hdr", "b.hdr"])
    argv = ["prepare", "--name", "hdr_folder", "--manual_dir", str(folder),
            "--data_dir", str(tmp_path / "tfds"), "--set", "split.test_fraction=0.5"]
    assert cli.main(argv) == 0
    assert "train: 1, test: 1" in capsys.readouterr().out
    assert cli.main(["prepare", "--name", "hdr_folder", "--manual_dir",
                     str(tmp_path / "missing")]) == 1
    assert "missing" in capsys.readouterr().err
    assert cli.main(["benchmark", "--set", "nope=1"]) == 1
    assert "no field 'nope'" in capsys.readouterr().err
