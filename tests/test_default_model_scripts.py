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


def write_report_inputs(folder):
    """Result files and a manifest as the evaluation, the recipe and plot_curves write them."""
    (folder / "default-model-eval").mkdir(parents=True)
    cols = "method,exposure,n,masked,pu21_psnr_mean,pu21_ssim_mean,log_psnr_mean,inverse_crf_rmse_mean"
    rows = ["stages_refinement,all,10,2,25.0,0.9,30.0,0.05",
            "stages_dequantization_linearization,all,10,2,20.0,0.8,28.0,0.05",
            "srgb,all,10,2,23.5,0.85,27.0,0.09", "mean_crf,all,10,2,22.0,0.8,26.0,0.07",
            "true_crf,all,10,2,24.0,0.9,31.0,0.0", "srgb,+0,5,1,30.0,0.9,30.0,0.09"]
    (folder / "default-model-eval" / "summary.csv").write_text("\n".join([cols] + rows) + "\n")
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
    (folder / "weights" / "manifest.json").write_text(json.dumps({"files": [{"bytes": 2 ** 20}],
                                                                 "encoder": {"source": "lpips"}}))


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
    assert "best non-oracle baseline: srgb, 23.50 dB" in block and "+1.50 dB from it (target: ≥ +1 dB) — met" in block
    assert "+1.00 dB from it (target: above it) — met" in block
    assert "0.0500, against 0.0700" in block
    assert "| linearization | 100 × 4 | 128² | 400 | 10 min | curve_rmse 26 | +2 |" in block
    assert run_module("experiments.default_model.report", *args, "--check", timeout=300).returncode == 0
