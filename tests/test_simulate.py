"""The `python -m hdrjax.simulate` command: outputs, sidecar, reproducibility, clear errors."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import jax

from hdrjax import io as hio
from hdrjax import simulate
from hdrjax.camera import crf, pipeline

H, W = 24, 40  # one size for every run: the CLI's jit compiles once per image shape


def _scene(seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W] / W
    img = np.exp(2.0 * xx - yy)[..., None] * np.array([1.0, 0.8, 0.6])
    img[3:8, 30:36] *= 20.0  # a light
    return (img * rng.lognormal(0, 0.05, img.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("scenes")
    hio.write_image(d / "scene.exr", _scene())
    hio.write_image(d / "scene.hdr", _scene())
    return d


def _run(argv, capsys):
    rc = simulate.main([str(a) for a in argv])
    err = capsys.readouterr().err
    return rc, err


def _no_temp_files(folder):
    return not [p for p in os.listdir(folder) if p.startswith(".")]


def test_png_output_is_our_pipeline_and_sidecar_is_exact(scene_dir, tmp_path, capsys):
    out = tmp_path / "shot.png"
    rc, err = _run([scene_dir / "scene.exr", "--output", out, "--seed", 5, "--sidecar",
                    "--exposure", "-1"], capsys)
    assert rc == 0, err
    meta = json.loads((tmp_path / "shot.png.json").read_text())
    assert meta["seed"] == 5 and meta["crf"]["spec"].startswith("family:")
    assert meta["jpeg"]["quality"] in pipeline.CameraConfig().jpeg_qualities
    assert len(meta["noise"]["sigma_signal"]) == 3 and len(meta["noise"]["sigma_const"]) == 3
    hdr = hio.read_image(scene_dir / "scene.exr")
    assert meta["exposure"]["auto_scale"] == pytest.approx(simulate.auto_scale(hdr, "median"))
    assert meta["exposure"]["multiplier"] == pytest.approx(meta["exposure"]["auto_scale"] / 2, rel=1e-6)
    # Re-running the pipeline with the recorded parameters gives the written pixels.
    bank = crf.parametric_bank()
    # (simulate's own jitted synthesize: same shapes, so no second compilation)
    s = simulate._synthesize(jax.random.key(5), hdr[None], bank, pipeline.CameraConfig(),
                            crf_index=np.array([meta["crf"]["index"]]),
                            exposure=np.array([meta["exposure"]["multiplier"]], np.float32),
                            quality=np.array([meta["jpeg"]["quality"]]))
    np.testing.assert_allclose(hio.read_image(out), np.asarray(s.jpeg[0]), atol=0.5 / 255)
    np.testing.assert_allclose(meta["noise"]["sigma_signal"], np.asarray(s.noise_signal[0]), rtol=1e-6)
    assert bank.names[meta["crf"]["index"]] == meta["crf"]["name"]
    assert _no_temp_files(tmp_path)

    # Same seed, same file; another seed, another camera.
    again = tmp_path / "again.png"
    assert _run([scene_dir / "scene.exr", "-o", again, "--seed", 5, "--exposure", "-1"], capsys)[0] == 0
    assert again.read_bytes() == out.read_bytes()
    other = tmp_path / "other.png"
    assert _run([scene_dir / "scene.exr", "-o", other, "--seed", 6, "--exposure", "-1"], capsys)[0] == 0
    assert not np.array_equal(hio.read_image(other), hio.read_image(out))


def test_jpg_output_is_a_real_jpeg(scene_dir, tmp_path, capsys):
    out = tmp_path / "shot.jpg"
    rc, err = _run([scene_dir / "scene.hdr", "-o", out, "--crf", "family:srgb", "--quality", 80,
                    "--auto-exposure", "none", "--exposure", "-2", "--sidecar"], capsys)
    assert rc == 0, err
    assert out.read_bytes()[:2] == b"\xff\xd8"
    meta = json.loads(out.with_name("shot.jpg.json").read_text())
    assert meta["crf"]["name"] == "srgb" and meta["jpeg"]["quality"] == 80
    assert meta["exposure"]["multiplier"] == pytest.approx(0.25)
    assert "OpenCV" in meta["jpeg"]["encoder"]
    img = hio.read_image(out)
    assert img.shape == (H, W, 3) and 0 < img.mean() < 1


def test_dorf_file_and_index(scene_dir, tmp_path, capsys):
    grid = np.linspace(0, 1, crf.N_SAMPLES)
    np.savez(tmp_path / "curves.npz", I=np.tile(grid, (3, 1)), B=np.stack([grid ** 0.3, grid ** 0.5, grid]))
    out = tmp_path / "dorf.png"
    rc, err = _run([scene_dir / "scene.exr", "-o", out, "--crf-file", tmp_path / "curves.npz",
                    "--crf", "dorf:2", "--sidecar"], capsys)
    assert rc == 0, err
    meta = json.loads((tmp_path / "dorf.png.json").read_text())
    assert meta["crf"]["index"] == 2 and meta["crf"]["spec"] == "dorf:dorf-002"
    assert meta["crf"]["file"] == str(tmp_path / "curves.npz")


def test_output_folder_is_created(scene_dir, tmp_path, capsys):
    # The README's walk-through writes into shots/ of a fresh clone.
    out = tmp_path / "shots" / "deep" / "desk.png"
    rc, err = _run([scene_dir / "scene.exr", "-o", out, "--seed", 1], capsys)
    assert rc == 0, err
    assert out.is_file()


@pytest.mark.parametrize("case, message", [
    ("missing", "no such file"),
    ("damaged", "damaged.exr"),
    ("ldr_input", "expected an HDR image"),
    ("bad_crf_name", "no such family curve"),
    ("dorf_without_file", "needs --crf-file"),
    ("bad_crf_file", "bad_curves.txt"),
    ("bad_extension", "output must be one of"),
    ("folder_is_a_file", "is a file, not a folder"),
    ("bad_quality", "must be in 1..100"),
])
def test_errors_are_one_line_and_nonzero(scene_dir, tmp_path, capsys, case, message):
    exr = scene_dir / "scene.exr"
    out = tmp_path / "out.png"
    (tmp_path / "damaged.exr").write_bytes(b"v/1\x01\x02\x00\x00\x00garbage" * 4)
    (tmp_path / "bad_curves.txt").write_text("only\nfour\nlines\nhere\n")
    (tmp_path / "ldr.png").write_bytes(b"")
    argv = {
        "missing": [tmp_path / "nope.exr", "-o", out],
        "damaged": [tmp_path / "damaged.exr", "-o", out],
        "ldr_input": [tmp_path / "ldr.png", "-o", out],
        "bad_crf_name": [exr, "-o", out, "--crf", "family:no-such-curve"],
        "dorf_without_file": [exr, "-o", out, "--crf", "dorf:3"],
        "bad_crf_file": [exr, "-o", out, "--crf-file", tmp_path / "bad_curves.txt"],
        "bad_extension": [exr, "-o", tmp_path / "out.gif"],
        "folder_is_a_file": [exr, "-o", tmp_path / "damaged.exr" / "out.png"],
        "bad_quality": [exr, "-o", out, "--quality", 0],
    }[case]
    rc, err = _run(argv, capsys)
    assert rc == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert "Traceback" not in err
    assert not out.exists() and _no_temp_files(tmp_path)


def test_module_entry_point_reports_bad_input(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "hdrjax.simulate", str(tmp_path / "none.hdr"),
                           "--output", str(tmp_path / "x.png")], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: {tmp_path / 'none.hdr'}: no such file"


def test_auto_scale_modes():
    img = np.full((4, 4, 3), 2.0, np.float32)
    img[0, 0] = 100.0
    assert simulate.auto_scale(img, "median") == pytest.approx(0.18 / 2.0)
    assert simulate.auto_scale(img, "mean") == pytest.approx(0.5 / img.mean())
    assert simulate.auto_scale(img, "none") == 1.0
    dark = np.zeros((4, 4, 3), np.float32)
    dark[0, 0] = 1.0
    assert simulate.auto_scale(dark, "median") == pytest.approx(0.18)  # lit pixels' mean
    assert simulate.auto_scale(np.zeros((2, 2, 3), np.float32), "median") == 1.0
