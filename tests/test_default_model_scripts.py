"""experiments/default_model/: the training curves, the held-out figure and the README section,
run as the programs the README documents (`python -m experiments.default_model.<name>` from the
repository root; tests import nothing from experiments/).

The curves run on fake metrics.jsonl files; the figure on the two small HDR scenes of
`hdr_folder` with the tiny shipped model (what is under test is the program, not the network);
the report on result files made up here.
"""
import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("matplotlib")


def write_jsonl(path, rows, tail=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        f.write(tail)


def fake_run(folder, metrics, *, n=60, batch=4, every=20, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for step in range(1, n + 1):
        loss = float(np.exp(-step / 30) * (1 + 0.3 * rng.standard_normal() ** 2))
        rows.append({"kind": "train", "step": step, "images_seen": step * batch, "time": 1.0 * step,
                     "loss": loss, "loss_mse": loss, "images_per_sec": 10.0})
        if step % every == 0:
            rows.append({"kind": "eval", "step": step, "images_seen": step * batch, "time": 1.0 * step,
                         **{m: float(20 + step / 10 + i) for i, m in enumerate(metrics)}})
    return rows


def test_plot_curves_writes_json_and_png(tmp_path, run_module):
    runs = tmp_path / "runs"
    write_jsonl(runs / "deq" / "metrics.jsonl", fake_run(runs, ["psnr"]))
    lin = fake_run(runs, ["psnr", "curve_rmse"], seed=1)
    # A resumed run re-logs steps 41..60 (last one wins) and a torn last line is skipped.
    relog = [dict(r, loss=r.get("loss", 0) * 0 + 0.5) if r["kind"] == "train" else r for r in lin[-21:]]
    write_jsonl(runs / "lin" / "metrics.jsonl", lin + relog, tail='{"kind": "train", "st')
    write_jsonl(runs / "hal" / "metrics.jsonl", fake_run(runs, ["tone_psnr", "mu_psnr", "pu21_psnr"], seed=2))
    out = tmp_path / "results" / "training-curves"
    proc = run_module("experiments.default_model.plot_curves", "--run", f"dequantization={runs / 'deq'}",
                      "--run", f"linearization={runs / 'lin'}", "--run", f"hallucination={runs / 'hal'}",
                      "--run", f"joint={runs / 'missing'}", "--mean-curve-rmse", "0.086", "--smooth", "20",
                      "--out", out, timeout=300)
    err = proc.stderr
    assert proc.returncode == 0, err
    assert "joint: skipped" in err and "missing" in err
    record = json.loads(out.with_name("training-curves.json").read_text())
    assert list(record["stages"]) == ["dequantization", "linearization", "hallucination"]
    assert list(record["skipped"]) == ["joint"] and record["mean_curve_rmse"] == 0.086
    for stage, c in record["stages"].items():
        assert {"train_raw", "train_smoothed", "eval", "eval_metrics"} <= set(c)
        assert len(c["train_raw"]) == len(c["train_smoothed"]) == 60
        assert len(c["eval"]) == 3 and all(len(p) == 1 + len(c["eval_metrics"]) for p in c["eval"])
        assert c["train_raw"][0][0] == 4 and c["eval"][-1][0] == 240  # images seen
    assert record["stages"]["dequantization"]["eval_metrics"] == ["psnr"]
    assert record["stages"]["linearization"]["eval_metrics"] == ["curve_rmse"]
    assert record["stages"]["hallucination"]["eval_metrics"] == ["pu21_psnr", "tone_psnr"]
    lin_c = record["stages"]["linearization"]
    assert lin_c["bad_lines"] == 1 and lin_c["train_raw"][-1][1] == 0.5
    raw = [v for _, v in record["stages"]["dequantization"]["train_raw"]]
    sm = [v for _, v in record["stages"]["dequantization"]["train_smoothed"]]
    assert sm[0] == pytest.approx(raw[0]) and sm[-1] == pytest.approx(np.mean(raw[-20:]))
    with Image.open(out.with_name("training-curves.png")) as im:
        assert im.width > 500 and im.height > 300
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 10

    # Nothing readable: exit 1, nothing written.
    proc = run_module("experiments.default_model.plot_curves", "--run", f"joint={runs / 'missing'}",
                      "--out", tmp_path / "none", timeout=300)
    assert proc.returncode == 1 and not (tmp_path / "none.json").exists()
    assert proc.stderr.splitlines()[-1] == "error: no stage could be read; nothing written"


@pytest.mark.slow
def test_figure_with_a_shipped_model(tiny_shipped_model, hdr_folder, tmp_path, run_module):
    images = sorted(hdr_folder.iterdir())
    out = tmp_path / "fig" / "held-out.png"
    proc = run_module("experiments.default_model.figure", "--checkpoint", tiny_shipped_model, "--images", *images,
                      "--crf", "family", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with Image.open(out) as im:
        assert im.width > 600 and im.height > 200
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 20
    assert f"wrote {out}" in proc.stderr

    # An unreadable image is an error line; the other still makes the figure, exit status 1.
    bad = tmp_path / "bad.exr"
    bad.write_bytes(b"nope")
    proc = run_module("experiments.default_model.figure", "--checkpoint", tiny_shipped_model, "--images", bad,
                      images[0], "--out", tmp_path / "f2.png")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and (tmp_path / "f2.png").is_file()
    assert len(errors) == 1 and str(bad) in errors[0] and "Traceback" not in proc.stderr


# Per held-out file of the report's fixture: its crops (a crop is the file's stem + `_<n>`: `scene_12`
# is a stem that ends in digits itself) and, per method, the PU21-PSNR of each of its scored samples.
REPORT_FILES = {"alpha": ("alpha_0", "alpha_1"), "scene_12": ("scene_12_0",)}
REPORT_SAMPLES = {"alpha": 6, "scene_12": 4}
REPORT_PU21 = {  # method: (alpha, scene_12); summary.csv's means are these weighted 6:4
    "stages_refinement": (23.0, 28.0),  # 25.0: alpha is 1 dB below inverse sRGB there
    "stages_hallucination": (24.5, 24.5),
    "stages_dequantization_linearization": (20.0, 20.0),
    "srgb": (24.0, 22.75),  # 23.5
    "true_crf": (24.0, 24.0),
}


def write_report_inputs(folder, *, manifest=None):
    """Result files and a manifest as the evaluation, the recipe and plot_curves write them."""
    (folder / "default-model-eval").mkdir(parents=True)
    cols = ("method,exposure,n,masked,pu21_psnr_mean,pu21_ssim_mean,log_psnr_mean,inverse_crf_rmse_mean,"
            "speckle_mean")
    # akyuz2007 beats inverse sRGB but is not one of the fixed curves; gamma22 is one, below it.
    rows = ["stages_refinement,all,10,2,25.0,0.9,30.0,0.05,1.4",
            "stages_hallucination,all,10,2,24.5,0.9,30.0,0.05,2.0",
            "stages_dequantization_linearization,all,10,2,20.0,0.8,28.0,0.05,3.0",
            "srgb,all,10,2,23.5,0.85,27.0,0.09,1.1", "mean_crf,all,10,2,22.0,0.8,26.0,0.07,",
            "gamma22,all,10,2,23.0,0.8,26.0,0.08,", "akyuz2007,all,10,2,24.9,0.8,26.0,,",
            "true_crf,all,10,2,24.0,0.9,31.0,0.0,1.0", "srgb,+0,5,1,30.0,0.9,30.0,0.09,1.0"]
    (folder / "default-model-eval" / "summary.csv").write_text("\n".join([cols] + rows) + "\n")
    per_image = ["method,image,crf,exposure,stops,jpeg_quality,mask,pu21_psnr,speckle"]
    for method, values in REPORT_PU21.items():
        for (name, crops), value in zip(REPORT_FILES.items(), values):
            samples = [(crops[i % len(crops)], f"dorf-{i}") for i in range(REPORT_SAMPLES[name])]
            for i, (crop, crf) in enumerate(samples):
                speckle = "" if i == 0 else 1.5 if name == "alpha" else 0.5
                per_image.append(f"{method},{crop},{crf},1,0,90,1,{value},{speckle}")
            per_image.append(f"{method},{crops[0]},dorf-9,8,3,90,0,,")  # masked: no metrics, not counted
    (folder / "default-model-eval" / "per_image.csv").write_text("\n".join(per_image) + "\n")
    bands = ["method,exposure,band,samples,pixel_share,mse,error_share,gain_db,pu21_psnr"]
    gaps = ["method,versus,band,samples,gain_db"]
    for i, band in enumerate(("deep_shadow", "shadow", "mid", "near_clipped", "clipped")):
        bands += [f"stages_refinement,all,{band},10,0.2,100,0.2,{0.5 + i},25.0",
                  f"srgb,all,{band},10,0.2,100,0.2,{-0.25 - i},23.5", f"srgb,+0,{band},5,0.2,1,0.2,9,30"]
        gaps.append(f"stages_refinement,srgb,{band},10,{i - 2.0}")
    gaps.append("stages_refinement,srgb,all,10,-1.5")
    (folder / "default-model-eval" / "bands.csv").write_text("\n".join(bands) + "\n")
    (folder / "default-model-eval" / "gaps.csv").write_text("\n".join(gaps) + "\n")
    (folder / "default-model-eval" / "protocol.json").write_text(json.dumps(
        {"crf_spec": "dorf:x, test split",
         "config": {"exposure_stops": [-3, 0, 3], "jpeg_quality": 90, "resolution": 256}}))
    (folder / "training-stages.json").write_text(json.dumps({"linearization": {
        "steps": 100, "batch_size": 4, "patch_size": 128, "images_seen": 400, "wall_seconds": 600}}))
    # The held-out curve_rmse rises by exactly 2 per doubling of the images seen: the trend column.
    evals = [[2 ** k, 20.0, 10.0 + 2 * k] for k in range(1, 9)]
    (folder / "training-curves.json").write_text(json.dumps({"mean_curve_rmse": 0.08, "stages": {"linearization": {
        "eval_metrics": ["psnr", "curve_rmse"], "eval": evals}}}))
    (folder / "weights").mkdir()
    (folder / "weights" / "manifest.json").write_text(json.dumps(
        manifest or {"dtype": "float32", "files": [{"bytes": 2 ** 20}], "encoder": {"source": "lpips"}}))


def run_report(run_module, folder):
    """Run the report on `folder`'s files into a fresh README there; (finished process, block or None)."""
    readme = folder / "README.md"
    readme.write_text("# Title\n\n<!-- default-model:begin -->\nold text\n<!-- default-model:end -->\n\nafter\n")
    proc = run_module("experiments.default_model.report", "--results", folder, "--weights", folder / "weights",
                      "--readme", readme, timeout=300)
    text = readme.read_text()
    block = text.split("<!-- default-model:begin -->\n")[1].split("<!-- default-model:end -->")[0]
    return proc, (block if proc.returncode == 0 else None)


def test_default_model_report_is_computed_from_the_result_files(tmp_path, run_module):
    write_report_inputs(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\n<!-- default-model:begin -->\nold text\n<!-- default-model:end -->\n\nafter\n")
    args = ["--results", tmp_path, "--weights", tmp_path / "weights", "--readme", readme]
    check = run_module("experiments.default_model.report", *args, "--check", timeout=300)
    assert check.returncode == 1 and "out of date" in check.stderr
    proc = run_module("experiments.default_model.report", *args, timeout=300)
    assert proc.returncode == 0, proc.stderr
    text = readme.read_text()
    assert text.startswith("# Title\n\n<!-- default-model:begin -->\n") and text.endswith("<!-- default-model:end "
                                                                                          "-->\n\nafter\n")
    block = text.split("<!-- default-model:begin -->\n")[1].split("<!-- default-model:end -->")[0]
    assert (tmp_path / "default-model.md").read_text() == "# The default model\n\n" + block
    assert ("| **hdrjax default model**: Deq + Lin + Hal + Ref (all four stages) | 25.00 | 0.9000 | 30.00 | 0.0500 "
            "| 10 |") in block
    assert "2-core CPU in 0.2 h of wall time; weights: `hdrjax/weights/default` (1 float32 `.npz` shards" in block
    # The targets: the best fixed curve is inverse sRGB (akyuz2007 is higher but not a fixed curve).
    assert ("the default model (Deq + Lin + Hal + Ref (all four stages)), 25.00 dB PU21-PSNR, against the best fixed "
            "curve (inverse sRGB, 23.50 dB; the best of inverse sRGB, gamma 2.2, mean inverse CRF of DoRF's training "
            "curves): +1.50 dB (target: ≥ +1.5 dB) — met.") in block
    assert ("its Deq + Lin prefix alone, 20.00 dB, against the same curve: -3.50 dB (target: ≥ +1 dB) — not met."
            in block)
    assert ("per held-out file against inverse sRGB (table below): worst alpha, -1.00 dB; 1 of 2 files more than "
            "0.5 dB below it (target: none) — not met.") in block
    assert "over the samples that have such a region): 1.40 (target: ≤ 1.5) — met." in block
    assert ("the shipped output is the four-stage output (manifest `output_stage`: absent; target: the four-stage "
            "output) — met.") in block
    assert "the true-CRF oracle reaches 24.00 dB; the default model is +1.00 dB from it." in block
    assert "0.0500, against 0.0700" in block
    # Per file: crops pooled (scene_12_0 is file scene_12), masked rows left out, worst first, bold below -0.5 dB.
    assert ("| **alpha** | 6 | 23.00 | 24.00 | **-1.00** | 20.00 | 24.00 | 1.50 |\n"
            "| scene_12 | 4 | 28.00 | 22.75 | +5.25 | 20.00 | 24.00 | 0.50 |\n") in block
    # The error budget, from bands.csv (exposure "all" only) and gaps.csv.
    assert "| deep shadow (< 2⁻⁸) | 20.0 % | +0.50 | -0.25 | -2.00 |" in block
    assert "| clipped (≥ 1) | 20.0 % | +4.50 | -4.25 | +2.00 |" in block
    assert "| **PU21-PSNR** (mean over samples) |  | 25.00 | 23.50 | -1.50 (all bands) |" in block
    assert "| linearization | 100 × 4 | 128² | 400 | 10 min | curve_rmse 26 | +2 |" in block
    assert "weights-storage.json" not in block and "| run |" not in block
    assert run_module("experiments.default_model.report", *args, "--check", timeout=300).returncode == 0


def test_default_model_report_with_a_training_history_and_float16_storage(tmp_path, run_module):
    """A model continued once (manifest history + training_total), shipped after the Hallucination-Net,
    with weights_storage.py's result file: each shows in the section."""
    history = [{"commit": "aaaaaaa1111", "created": "2026-12-02T13:28:22Z",
                "stages": {"dequantization": {"wall_seconds": 600.0, "images_seen": 400, "platform": "cpu"},
                           "joint": {"wall_seconds": 1200.0, "images_seen": 800, "platform": "cpu"}}},
               {"commit": "bbbbbbb2222", "created": "2027-01-05T08:00:00Z", "init": "default",
                "stages": {"joint": {"wall_seconds": 5400.0, "images_seen": 4000, "platform": "gpu"}}}]
    write_report_inputs(tmp_path, manifest={
        "dtype": "float16", "files": [{"bytes": 2 ** 20}] * 2, "encoder": {"source": "lpips"},
        "output_stage": "hallucination", "output_stage_reason": "better on the held-out set",
        "history": history, "training_total": {"wall_seconds": 7200.0, "images_seen": 5200}})
    (tmp_path / "weights-storage.json").write_text(json.dumps({
        "samples": 20, "pu21_psnr": {"float32": 20.051, "float16": 20.049},
        "pu21_psnr_float16_vs_float32_output": {"mean": 61.23, "min": 55.5},
        "bytes": {"float32": {"git_object_bytes": 50 * 2 ** 20}, "float16": {"git_object_bytes": 25 * 2 ** 20}}}))
    proc, block = run_report(run_module, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert ("in total the shipped weights have had 2.0 h of training wall time and 5,200 training images over 2 runs"
            in block)
    assert "the last run's stages took 0.2 h" in block and "(2 float16 `.npz` shards, 2 MiB;" in block
    assert "| 1 | 2026-12-02 | aaaaaaa | dequantization, joint | cpu | 1,200 | 30 min |" in block
    assert "| 2 | 2027-01-05 | bbbbbbb | joint | gpu | 4,000 | 90 min |" in block
    assert ("Stored in float16 the same weights give 20.05 dB PU21-PSNR against 20.05 dB in float32 on 20 held-out "
            "samples (the float16 output is 61.2 dB PU21-PSNR from the float32 one, 55.5 dB on the worst sample); "
            "each weight update adds 50 MiB to the git history in float32 and 25 MiB in float16") in block
    # Shipped after the Hallucination-Net: its row is the default model and the targets measure it.
    assert "| **hdrjax default model**: Deq + Lin + Hal | 24.50 |" in block
    assert "the default model (Deq + Lin + Hal), 24.50 dB PU21-PSNR" in block
    assert "+1.00 dB (target: ≥ +1.5 dB) — not met." in block
    assert "worst alpha, +0.50 dB; 0 of 2 files more than 0.5 dB below it (target: none) — met." in block
    assert "region): 2.00 (target: ≤ 1.5) — not met." in block
    assert ("the shipped output is the output of Deq + Lin + Hal (manifest `output_stage`: hallucination; target: "
            "the four-stage output) — not met.\n  Why: better on the held-out set") in block
    # bands.csv has no row of the shipped method: no budget table rather than a wrong one.
    assert "**Error budget**" not in block


def test_default_model_report_refuses_a_per_file_grouping_that_misses_samples(tmp_path, run_module):
    write_report_inputs(tmp_path)
    per_image = tmp_path / "default-model-eval" / "per_image.csv"
    lines = per_image.read_text().splitlines()
    dropped = next(i for i, line in enumerate(lines) if line.startswith("srgb,scene_12_0,"))
    per_image.write_text("\n".join(lines[:dropped] + lines[dropped + 1:]) + "\n")
    proc, block = run_report(run_module, tmp_path)
    assert proc.returncode == 1 and block is None
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {per_image}: srgb has 9 scored samples, mean PU21-PSNR 23.5833, but summary.csv has 10 and 23.5")


def test_committed_per_file_table_adds_up_to_the_summary(run_module):
    """The README's per-file table on the committed evaluation: its files' samples, weighted, give
    summary.csv's overall mean for every method it shows (the report stops otherwise)."""
    proc = run_module("experiments.default_model.report", "--check", timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_linearization_ab_refuses_a_switch_the_config_lacks(tmp_path, run_module):
    # The A/B's arms are configs of the recipe's linearization stage with one field set; a
    # misspelt field must stop it before any training, not train an arm that differs in nothing.
    for switch in ("train.lin_inptu", "trian.lin_input", "lin_input"):
        proc = run_module("experiments.default_model.lin_loss_ab", "--workdir", tmp_path / "ab", "--switch", switch,
                          "--arms", "jpeg", "--hdr-folder", tmp_path, "--out", tmp_path / "ab.json")
        assert proc.returncode != 0 and f"--switch {switch}: no such config field" in proc.stderr, proc.stderr
        assert not (tmp_path / "ab.json").exists() and not (tmp_path / "ab" / "jpeg").exists()


def test_shipped_batch_stats_puts_the_shipped_statistics_back_and_keeps_the_weights(
        tmp_path, run_module, tiny_shipped_model, tiny_checkpoint):
    import jax

    from hdrjax.weights import checkpoints, pretrained

    _, shipped, config, _ = pretrained.load(tiny_shipped_model)
    shipped = jax.tree.map(np.asarray, shipped)
    moved = {"params": jax.tree.map(lambda a: a + 0.5, shipped["params"]),
             "batch_stats": jax.tree.map(lambda a: a * 2.0 + 1.0, shipped["batch_stats"])}
    checkpoints.save_variables(tmp_path / "run", moved, config)
    proc = run_module("experiments.default_model.shipped_batch_stats", tmp_path / "run", tmp_path / "out",
                      "--model", tiny_shipped_model)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "largest BatchNorm statistic change" in proc.stdout
    out, _, _ = checkpoints.load_inference_variables(tmp_path / "out")
    for a, b in zip(jax.tree.leaves(out["batch_stats"]), jax.tree.leaves(shipped["batch_stats"])):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(out["params"]), jax.tree.leaves(moved["params"])):
        np.testing.assert_array_equal(a, b)
    # Another architecture (the full-width shipped model) is one error line, not a traceback.
    proc = run_module("experiments.default_model.shipped_batch_stats", tiny_checkpoint, tmp_path / "bad")
    assert proc.returncode == 1 and proc.stderr.startswith("error: "), proc.stderr[-2000:]
    assert "another architecture" in proc.stderr and not (tmp_path / "bad").exists()


def test_dark_end_scores_and_dark_codes_on_a_small_shared_folder(tmp_path, run_module, tiny_shipped_model,
                                                                 shared_data, hdr_folder):
    # The program end to end on a shared/data-shaped folder of tiny scenes: which files land in
    # which set, one entry per variant and set, and the dark-codes record as the doc's block reads it.
    from hdrjax.configs import recipe
    from hdrjax.evaluation import baselines
    from hdrjax.io import read_image, write_image

    scenes = [read_image(f) for f in sorted(hdr_folder.iterdir())]

    shared = tmp_path / "shared"
    for sub in ("crf", "train_hdr", "real_hdr"):
        (shared / sub).mkdir(parents=True)
    (shared / "crf" / "dorf_201.npz").symlink_to(shared_data("crf", "dorf_201.npz"))
    training = ("train_a.hdr", "train_b.hdr", "train_c.hdr")
    for i, name in enumerate(recipe.TEST_NAMES + training):
        write_image(shared / "train_hdr" / name, scenes[i % 2] * (1 + i))
    write_image(shared / "real_hdr" / "Photo.exr", scenes[1] * 0.5)
    common = ("--checkpoint", tiny_shipped_model, "--shared", shared, "--resolution", 32,
              "--train-files", 2, "--train-crfs", 2, "--test-crfs", 1)

    proc = run_module("experiments.default_model.dark_end", *common, "--dark-codes", "--dark-stops=-3,0",
                      "--out", tmp_path / "codes.json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    codes = json.loads((tmp_path / "codes.json").read_text())
    sets = codes["dark_codes"]
    assert set(sets["train"]["files"]) <= set(training) and len(sets["train"]["files"]) == 2
    assert sets["held_out"]["files"] == list(recipe.TEST_NAMES) + ["Photo.exr"]
    assert len(sets["train"]["crfs"]) == 2 and len(sets["held_out"]["crfs"]) == 1
    for name, files in (("train", 2 * 2), ("held_out", (len(recipe.TEST_NAMES) + 1) * 1)):
        for stops in ("-3", "0"):
            record = sets[name]["stops"][stops]
            assert record["samples"] == 2 * files  # two crops per file, one sample per curve
            for v in record["codes"].values():
                assert 0 <= v["share_black"] <= 1 and v["ratio_q10"] <= v["ratio_q50"] <= v["ratio_q90"]
    levels = codes["curve_levels"]
    counts = tuple(levels[k]["curves"] for k in ("dorf_train", "dorf_test", "train_set"))
    assert counts == (191, 10, 2)
    srgb = np.asarray(baselines.inverse_srgb(np.array([1, 16, 128]) / 255.0))
    # stored to 5 decimal places
    np.testing.assert_allclose([levels["srgb"]["level"][c] for c in ("1", "16", "128")], srgb, atol=1e-5)

    proc = run_module("experiments.default_model.dark_end", *common, "--sets", "held_out", "--knots", "16",
                      "--powers", "0,1", "--out", tmp_path / "scores.json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert list(scores["sets"]) == ["held_out"]
    methods = scores["sets"]["held_out"]["methods"]
    assert list(methods) == ["network", "prior_code16_power0", "prior_code16_power1", "srgb"]
    for v in methods.values():  # the tiny scenes have no deep shadows: that band's MSE may be None
        assert np.isfinite(v["pu21_psnr"]) and {"speckle", "deep_shadow_mse", "shadow_mse"} <= set(v)
    assert np.isfinite(methods["network"]["inverse_crf_rmse"])


def test_refinement_shadows_pools_the_deep_shadows_of_the_scored_samples(tmp_path, run_module, tiny_shipped_model,
                                                                        shared_data, hdr_folder):
    from hdrjax.io import read_image, write_image

    scene = read_image(sorted(hdr_folder.iterdir())[0])
    scene[:, : scene.shape[1] // 2] *= 1e-3  # a deep-shadow half (below 2⁻⁸ of the clipping point at every exposure)
    (tmp_path / "held-out").mkdir()
    write_image(tmp_path / "held-out" / "dark.exr", scene)
    common = ("experiments.default_model.refinement_shadows", "--checkpoint", tiny_shipped_model,
              "--source", tmp_path / "held-out", "--crf", f"dorf:{shared_data('crf', 'dorf_201.npz')}",
              "--max-crfs", 1, "--resolution", 32)
    proc = run_module(*common, "--out", tmp_path / "shadows.json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads((tmp_path / "shadows.json").read_text())
    assert r["values"] > 0 and r["checkpoint"] == str(tiny_shipped_model)
    for name in ("three_stage", "four_stage"):
        v = r[name]
        qs = [v[f"log2_ratio_q{q}"] for q in (10, 25, 50, 75, 90)]
        assert qs == sorted(qs) and 0 <= v["share_black"] <= 1
        assert v["median_ratio"] == pytest.approx(2.0 ** v["log2_ratio_q50"])
    assert 0 <= r["refinement_brightens_share"] <= 1 and r["refinement_change_abs_median"] >= 0

    # No deep-shadow value scored (here: no test patch at all) is an error, and nothing is written.
    proc = run_module(*common, "--limit", 0, "--out", tmp_path / "none.json")
    assert proc.returncode == 2 and "no deep-shadow value" in proc.stderr and not (tmp_path / "none.json").exists()
