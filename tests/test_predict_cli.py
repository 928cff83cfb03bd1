"""`python -m hdrjax.predict` end to end: command-line plumbing on the tiny SingleHDR.

What is under test is the command line (inputs, outputs, stages, errors, the checkpoint it
loads), not the network, so the checkpoints are of the tiny model (tests/conftest.py:
`tiny_checkpoint`; one freshly initialised by the model's own initialisers for the end-to-end
run). All images are 48×80 so the stages compile once for the whole session; tests that only
check file handling stop after the (cheap) Dequantization-Net.
"""
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from hdrjax import io, predict, tonemap
from hdrjax.models import build
from hdrjax.models.build import NETWORKS, random_variables
from hdrjax.weights import architecture, checkpoints, loading

ROOT = pathlib.Path(__file__).resolve().parents[1]
H, W = 48, 80  # the shape of the `ldr_image` photos


@pytest.fixture(scope="module")
def run_dir(tiny_checkpoint):
    return tiny_checkpoint


@pytest.fixture(scope="module")
def fresh_run_dir(tmp_path_factory, tiny_model, make_tiny_config):
    """A checkpoint of freshly initialised tiny SingleHDR variables (the model's own initialisers)."""
    variables = jax.jit(lambda k: build.init_variables(tiny_model, k))(jax.random.key(0))
    path = tmp_path_factory.mktemp("ckpt") / "fresh"
    checkpoints.save_variables(path, variables, make_tiny_config())
    return path


@pytest.mark.slow
def test_end_to_end_exr_and_preview(fresh_run_dir, tmp_path, ldr_image, write_png, predict_cli):
    run_dir = fresh_run_dir
    src = tmp_path / "in"
    src.mkdir()
    write_png(src / "photo.png", ldr_image(0))
    write_png(src / "deep.png", ldr_image(1), bits=16)
    out = tmp_path / "out"
    code, err = predict_cli(["--checkpoint", run_dir, "--output", out, "--preview", src])
    assert code == 0, err
    assert "warning:" in err and "only 6 steps" in err  # smoke checkpoint is flagged
    assert "output after refinement" in err  # a joint checkpoint defaults to the refined output
    assert sorted(p.name for p in out.iterdir()) == ["deep.exr", "deep.png", "photo.exr", "photo.png"]
    hdr = io.read_image(out / "photo.exr")
    assert hdr.shape == (H, W, 3) and np.isfinite(hdr).all() and hdr.min() >= 0
    # The CLI writes exactly what the library call returns for the same image and settings.
    model, variables, cfg, _ = loading.load_model(run_dir)
    ldr = io.read_image(src / "photo.png")
    expected = predict.reconstruct(model, variables, ldr, predict.PredictConfig(stages=NETWORKS))
    np.testing.assert_allclose(hdr, expected.refined, rtol=1e-6, atol=1e-6)
    preview = np.asarray(Image.open(out / "photo.png").convert("RGB"))
    np.testing.assert_array_equal(preview, tonemap.preview(hdr))


def test_hdr_format_half_and_stages(run_dir, tmp_path, ldr_image, write_png, predict_cli):
    write_png(tmp_path / "a.png", ldr_image(2))
    code, err = predict_cli(["--checkpoint", run_dir, "--output", tmp_path / "o1", "--format", "hdr",
                             "--stages", "linearization", tmp_path / "a.png"])
    assert code == 0, err
    b = io.read_image(tmp_path / "o1" / "a.hdr")
    assert b.shape == (H, W, 3) and b.max() <= 1.0 + 1e-2  # B: linear, clipped range (RGBE rounding)
    code, err = predict_cli(["--checkpoint", run_dir, "--output", tmp_path / "o2", "--half",
                             "--stages", "dequantization", tmp_path / "a.png"])
    assert code == 0, err
    c = io.read_image(tmp_path / "o2" / "a.exr")
    assert 0.0 <= c.min() and c.max() <= 1.0


def test_mixed_folder_good_written_broken_reported(run_dir, tmp_path, ldr_image, write_png, predict_cli):
    src = tmp_path / "mixed"
    src.mkdir()
    write_png(src / "good1.png", ldr_image(3))
    Image.fromarray(np.round(ldr_image(4) * 255).astype(np.uint8)).save(src / "good2.jpg", quality=95)
    (src / "empty.png").write_bytes(b"")
    (src / "truncated.jpg").write_bytes((src / "good2.jpg").read_bytes()[:200])
    (src / "text.tif").write_text("not an image")
    Image.new("CMYK", (W, H), (10, 20, 30, 40)).save(src / "cmyk.jpg")
    frames = [Image.fromarray(np.full((H, W, 3), v, np.uint8)) for v in (10, 200)]
    frames[0].save(src / "animated.png", save_all=True, append_images=frames[1:])
    (src / "notes.txt").write_text("ignored: not an image extension")
    out = tmp_path / "out"
    code, err = predict_cli(["--checkpoint", run_dir, "--output", out, "--stages", "dequantization", src,
                             tmp_path / "missing.jpg"])
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["good1.exr", "good2.exr"]  # no temp files left
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    for name in ("empty.png", "truncated.jpg", "text.tif", "cmyk.jpg", "animated.png", "missing.jpg"):
        assert sum(name in line for line in errors) == 1, (name, err)
    assert len(errors) == 6
    assert "Traceback" not in err


def test_existing_outputs_skipped_unless_overwrite(run_dir, tmp_path, ldr_image, write_png, predict_cli):
    write_png(tmp_path / "x.png", ldr_image(5))
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.exr").write_bytes(b"sentinel")
    args = ["--checkpoint", run_dir, "--output", out, "--stages", "dequantization", tmp_path / "x.png"]
    code, err = predict_cli(args)
    assert code == 0 and "skipped, exists" in err
    assert (out / "x.exr").read_bytes() == b"sentinel"
    code, err = predict_cli(args + ["--overwrite"])
    assert code == 0, err
    assert io.read_image(out / "x.exr").shape == (H, W, 3)
    # A missing preview is still written when the HDR exists; the HDR is left alone.
    before = (out / "x.exr").read_bytes()
    code, err = predict_cli(args + ["--preview"])
    assert code == 0 and (out / "x.png").exists() and (out / "x.exr").read_bytes() == before


@pytest.mark.parametrize(
    "extra",
    [["--half", "--format", "hdr"], ["--tile", "100"], ["--overlap", "512"], ["--batch-size", "0"],
     ["--format", "exr,png"], ["--half", "--format", "uhdr"], ["--brackets=-2,x"]],
)
def test_usage_errors_exit_2(run_dir, tmp_path, extra, ldr_image, write_png):
    write_png(tmp_path / "x.png", ldr_image(6))
    with pytest.raises(SystemExit) as e:
        predict.main(["--checkpoint", str(run_dir), "--output", str(tmp_path / "o"), *extra, str(tmp_path / "x.png")])
    assert e.value.code == 2


@pytest.fixture(scope="module")
def full_width_run_dir(tmp_path_factory):
    """A checkpoint of the real-width network (random weights: nothing compiled). The formats test
    holds the lossy files to the round-trip bound of test_display, which depends on the image:
    on the tiny network's output the AVIF file measured a 99th-percentile error of 0.151, just
    past the bound's 0.15; on this network's output it is within."""
    from hdrjax import configs

    config = configs.get_config("joint", "smoke")
    path = tmp_path_factory.mktemp("ckpt") / "full"
    checkpoints.save_variables(path, random_variables(build.build_model(config)), config)
    return path


def test_display_formats_brackets_and_preview(full_width_run_dir, tmp_path, ldr_image, write_png, predict_cli,
                                              assert_round_trip):
    """`--format uhdr,avif,exr` (and repeated --format), brackets, and a preview that is the
    Ultra HDR file's SDR base; the files decode to the EXR's display mapping (test_display)."""
    run_dir = full_width_run_dir
    from hdrjax.display import avif, mapping, ultrahdr

    write_png(tmp_path / "photo.png", ldr_image(8))
    out = tmp_path / "out"
    code, err = predict_cli(["--checkpoint", run_dir, "--output", out, "--stages", "dequantization", "--preview",
                             "--format", "uhdr,avif,exr", "--format", "avif-hlg", "--brackets=2,-2,0",
                             tmp_path / "photo.png"])
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        "photo.avif", "photo.exr", "photo.hlg.avif", "photo.png", "photo.uhdr.jpg",
        "photo_b1_-2ev.jpg", "photo_b2_+0ev.jpg", "photo_b3_+2ev.jpg"]
    expected = mapping.to_display(io.read_image(out / "photo.exr"))
    uhdr = (out / "photo.uhdr.jpg").read_bytes()
    assert_round_trip(ultrahdr.decode(uhdr), expected)
    assert_round_trip(avif.decode((out / "photo.avif").read_bytes()), expected)
    assert_round_trip(avif.decode((out / "photo.hlg.avif").read_bytes()), expected)
    preview = np.asarray(Image.open(out / "photo.png").convert("RGB"))
    np.testing.assert_array_equal(preview, ultrahdr.decode_sdr_base(uhdr))
    darker, brighter = (np.asarray(Image.open(out / n)).mean() for n in ("photo_b1_-2ev.jpg", "photo_b3_+2ev.jpg"))
    assert darker < brighter


def test_no_inputs_is_a_usage_error(run_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        predict.main(["--checkpoint", str(run_dir), "--output", str(tmp_path / "o"), str(tmp_path / "*.jpg")])
    assert e.value.code == 2
    assert "no .png" in capsys.readouterr().err


def test_bad_checkpoints_one_line(run_dir, tmp_path, ldr_image, write_png, predict_cli, tiny_config):
    write_png(tmp_path / "x.png", ldr_image(7))
    code, err = predict_cli(["--checkpoint", tmp_path / "nowhere", "--output", tmp_path / "o", tmp_path / "x.png"])
    assert code == 1 and [line for line in err.splitlines() if line.startswith("error:")] and "Traceback" not in err
    # Parameters of another shape: one line naming the parameter.
    model, variables, cfg, _ = loading.load_model(run_dir)
    params = jax.tree.map(np.asarray, variables["params"])
    kernel = params["refinement"]["conv2d"]["kernel"]
    params["refinement"]["conv2d"]["kernel"] = np.zeros(kernel.shape[:-1] + (kernel.shape[-1] + 1,), np.float32)
    bad = tmp_path / "bad"
    checkpoints.save_variables(bad, {"params": params, "batch_stats": variables["batch_stats"]}, tiny_config)
    code, err = predict_cli(["--checkpoint", bad, "--output", tmp_path / "o", tmp_path / "x.png"])
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(lines) == 1
    assert "does not match" in lines[0] and "refinement/conv2d/kernel" in lines[0]


def test_default_stages_follow_the_checkpoint():
    assert loading.stages_for_checkpoint({"stage": "joint"}) == NETWORKS
    assert loading.stages_for_checkpoint({"stage": "hallucination"}) == NETWORKS[:3]
    assert loading.checkpoint_warning({}, None)
    assert loading.checkpoint_warning({"stage": "joint", "train": {"num_steps": 100_000}}, 100_000) is None


def test_smoke_warning_names_the_reference_steps_of_the_checkpoints_own_stage():
    joint = loading.checkpoint_warning({"stage": "joint", "train": {"num_steps": 6}}, 6)
    assert "only 6 steps" in joint and "joint stage for 100,000 steps" in joint and "500,000" not in joint
    hal = loading.checkpoint_warning({"stage": "hallucination", "train": {"num_steps": 3000}}, None)
    assert "only 3000 steps" in hal and "hallucination stage for 500,000 steps" in hal and "100,000" not in hal
    # A stage the reference does not have is given no figure at all.
    other = loading.checkpoint_warning({"stage": "mystery"}, 5)
    assert "only 5 steps" in other and "reference" not in other


def test_stored_config_without_a_model_block_is_refused():
    with pytest.raises(architecture.LoadError) as e:
        architecture.model_from_config({"stage": "joint", "crf": {"invemor": ""}}, "runs/old")
    message = str(e.value)
    assert message.startswith("runs/old: ") and "no 'model' block" in message and "save_variables" in message


def test_stored_model_options_are_checked_against_the_defaults(caplog, tiny_config):
    stored = checkpoints.config_to_json(tiny_config)
    defaults = build.model_defaults()
    # A missing option is taken from model_defaults(), and the warning names it and its value.
    for name in ("lin_monotone", "border"):
        del stored["model"][name]
    with caplog.at_level("WARNING", logger="hdrjax.weights.architecture"):
        model, _ = architecture.model_from_config(stored, "runs/older")
    assert model.lin_monotone == defaults.lin_monotone and model.border == defaults.border
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and warned[0].startswith("runs/older: ")
    assert f"lin_monotone={defaults.lin_monotone!r}" in warned[0] and "border=0" in warned[0]
    # An unknown option (or a bad value) is one LoadError naming the folder and the field.
    stored["model"]["colour_space"] = "rec2020"
    with pytest.raises(architecture.LoadError,
                       match=r"^runs/newer: .*config\.model\.colour_space: not a SingleHDR option"):
        architecture.model_from_config(stored, "runs/newer")
    del stored["model"]["colour_space"]
    stored["model"]["dtype"] = "float99"
    with pytest.raises(architecture.LoadError, match=r"^runs/bad: .*config\.model\.dtype"):
        architecture.model_from_config(stored, "runs/bad")


def test_a_bug_while_building_the_model_keeps_its_traceback(monkeypatch, tiny_config):
    """Only user errors (HdrjaxError, OSError) become a LoadError line; anything else is a bug."""
    stored = checkpoints.config_to_json(tiny_config)
    stored["model"]["border"] = 7  # an architecture not built (cached) yet

    def broken(config):
        raise RuntimeError("a bug in build_model")

    monkeypatch.setattr(build, "build_model", broken)
    with pytest.raises(RuntimeError, match="a bug in build_model"):
        architecture.model_from_config(stored, "runs/x")


def test_output_names_unique():
    files = [pathlib.Path(p) for p in ("a/x.jpg", "a/x.png", "b/x.jpg", "a/y.tif")]
    assert predict.output_names(files) == ["x_jpg", "x_png", "x_jpg_2", "y"]


def test_module_help_runs():
    r = subprocess.run([sys.executable, "-m", "hdrjax.predict", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "--checkpoint" in r.stdout and "--reference-mode" in r.stdout


def test_moved_checkpoint_finds_its_basis_file(tmp_path, shared_data, ldr_image, write_png, predict_cli, tiny_config,
                                               tiny_model):
    """A checkpoint whose config names an invemor file that moved with it (e.g. a TF1 import)."""
    invemor = shared_data("singlehdr", "invemor.txt")
    config = tiny_config
    config.crf.invemor = str(tmp_path / "gone" / "invemor.txt")  # where it was when saved
    ckpt = tmp_path / "imported"  # the tiny model's shapes: the basis is not a variable
    checkpoints.save_variables(ckpt, random_variables(tiny_model, seed=1), config)
    (ckpt / "invemor.txt").write_bytes(invemor.read_bytes())
    write_png(tmp_path / "x.png", ldr_image(8))
    code, err = predict_cli(["--checkpoint", ckpt, "--output", tmp_path / "o", "--stages", "dequantization",
                             tmp_path / "x.png"])
    assert code == 0, err
    (ckpt / "invemor.txt").unlink()
    code, err = predict_cli(["--checkpoint", ckpt, "--output", tmp_path / "o2", "--stages", "dequantization",
                             tmp_path / "x.png"])
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "invemor" in errors[0]


def test_memory_budget_that_cannot_be_met_warns_once_and_still_writes(run_dir, tmp_path, ldr_image, write_png,
                                                                       predict_cli):
    for name in ("a.png", "b.png"):
        write_png(tmp_path / name, ldr_image(3))
    code, err = predict_cli(["--checkpoint", run_dir, "--output", tmp_path / "o", "--memory-budget", "1M", "--stages",
                     "dequantization", tmp_path])
    assert code == 0, err
    assert (tmp_path / "o" / "a.exr").exists() and (tmp_path / "o" / "b.exr").exists()
    warnings = [line for line in err.splitlines() if "memory budget cannot be met" in line]
    assert len(warnings) <= 1 and all(line.startswith("warning:") for line in warnings), err


@pytest.mark.parametrize("text,value", [("4G", 4e9), ("1500M", 1.5e9), ("2.5GB", 2.5e9), ("3GiB", 3 * 2**30),
                                        ("none", None), ("1000", 1000.0)])
def test_memory_budget_sizes(text, value):
    assert predict._parse_bytes(text) == value


def test_memory_budget_nonsense_is_a_usage_error(run_dir, tmp_path, capsys, ldr_image, write_png):
    write_png(tmp_path / "a.png", ldr_image(3))
    with pytest.raises(SystemExit) as e:
        predict.main(["--checkpoint", str(run_dir), "--output", str(tmp_path / "o"), "--memory-budget", "lots",
                      str(tmp_path / "a.png")])
    assert e.value.code == 2 and "not a size" in capsys.readouterr().err


@pytest.mark.slow
def test_compilation_cache_is_kept_between_runs(run_dir, tmp_path, ldr_image, write_png):
    """A fresh process fills --compilation-cache; the folder is what the README says to delete."""
    write_png(tmp_path / "a.png", ldr_image(4))
    cache = tmp_path / "compiled"
    cmd = [sys.executable, "-m", "hdrjax.predict", "--checkpoint", str(run_dir), "--output", str(tmp_path / "o"),
           "--stages", "dequantization", "--compilation-cache", str(cache), str(tmp_path / "a.png")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    entries = [p for p in cache.rglob("*") if p.is_file()]
    assert entries, "nothing was cached"
