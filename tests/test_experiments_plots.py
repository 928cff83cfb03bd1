"""experiments/plot_curves.py (training curves) and experiments/figure.py (held-out examples).

The curves run on fake metrics.jsonl files; the figure on two tiny synthetic HDR images with a
shipped-model folder of random weights of the tiny smoke-config model (40×56 images: the
networks compile once).
"""
import importlib.util
import json
import pathlib

import numpy as np
import pytest
from PIL import Image
from hdrjax.models import build

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytest.importorskip("matplotlib")


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"experiments_{name}", ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


plot_curves = load_script("plot_curves")
figure = load_script("figure")


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


def test_plot_curves_writes_json_and_png(tmp_path, capsys):
    runs = tmp_path / "runs"
    write_jsonl(runs / "deq" / "metrics.jsonl", fake_run(runs, ["psnr"]))
    lin = fake_run(runs, ["psnr", "curve_rmse"], seed=1)
    # A resumed run re-logs steps 41..60 (last one wins) and a torn last line is skipped.
    relog = [dict(r, loss=r.get("loss", 0) * 0 + 0.5) if r["kind"] == "train" else r for r in lin[-21:]]
    write_jsonl(runs / "lin" / "metrics.jsonl", lin + relog, tail='{"kind": "train", "st')
    write_jsonl(runs / "hal" / "metrics.jsonl", fake_run(runs, ["tone_psnr", "mu_psnr", "pu21_psnr"], seed=2))
    out = tmp_path / "results" / "training-curves"
    code = plot_curves.main(["--run", f"dequantization={runs / 'deq'}", "--run", f"linearization={runs / 'lin'}",
                             "--run", f"hallucination={runs / 'hal'}", "--run", f"joint={runs / 'missing'}",
                             "--mean-curve-rmse", "0.086", "--smooth", "20", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
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
    code = plot_curves.main(["--run", f"joint={runs / 'missing'}", "--out", str(tmp_path / "none")])
    assert code == 1 and not (tmp_path / "none.json").exists()


def test_prepare_hdr_limits_the_long_side_and_normalises():
    hdr = np.random.default_rng(0).uniform(0, 5, (300, 1030, 3)).astype(np.float32)
    out = figure.prepare_hdr(hdr, 512)
    assert out.shape == (149, 512, 3) and out.mean() == pytest.approx(0.5, rel=1e-4)
    small = figure.prepare_hdr(hdr[:40, :56], 512)
    assert small.shape == (40, 56, 3)


@pytest.fixture(scope="module")
def shipped_model(tmp_path_factory):
    from conftest import make_tiny_config
    from test_ablations import random_variables

    from hdrjax.weights import pretrained

    config = make_tiny_config()  # the figure's plumbing, not the network, is under test
    variables = random_variables(build.build_model(config))
    return pretrained.export(variables, config, tmp_path_factory.mktemp("shipped") / "model")


@pytest.mark.slow
def test_figure_with_a_shipped_model(shipped_model, tmp_path):
    from test_ablations import abl

    from hdrjax.evaluation.protocol import EvalConfig, Example, synthetic_samples
    from hdrjax import tonemap
    from hdrjax.camera import crf

    paths = abl.write_test_images(tmp_path / "hdr", n=2, size=(40, 56))
    out = tmp_path / "fig" / "held-out.png"
    code = figure.main(["--checkpoint", str(shipped_model), "--images", *map(str, paths), "--crf", "family",
                        "--out", str(out)])
    assert code == 0
    with Image.open(out) as im:
        assert im.width > 600 and im.height > 200
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 20

    # The input is the evaluation's own synthesis; ours and the GT share the tone curve's scale.
    bank = crf.load_bank("family", "test").take([0])
    hdr = figure.prepare_hdr(np.full((8, 8, 3), 3.0, np.float32))
    ldr, gt, _, meta = figure.camera_input("x", hdr, bank)
    ((ldr2, _, _, _),) = synthetic_samples(Example("x", hdr), bank, EvalConfig(exposure_stops=(0.0,)))
    np.testing.assert_array_equal(ldr, ldr2[0])
    assert meta["jpeg_quality"] == 90 and meta["stops"] == 0.0
    row = figure.panels(ldr, gt, gt)
    np.testing.assert_allclose(row[1], row[2])  # a perfect reconstruction looks exactly like the GT
    np.testing.assert_allclose(row[4], tonemap.to_srgb(np.clip(gt, 0, 1)))
    assert len(row) == len(figure.titles()) == 6

    # An unreadable image is an error line; the other still makes the figure, exit status 1.
    bad = tmp_path / "bad.exr"
    bad.write_bytes(b"nope")
    assert figure.main(["--checkpoint", str(shipped_model), "--images", str(bad), str(paths[0]),
                        "--out", str(tmp_path / "f2.png")]) == 1
    assert (tmp_path / "f2.png").is_file()


def _load_report():
    import importlib.util

    path = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "default_model_report.py"
    spec = importlib.util.spec_from_file_location("default_model_report_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_default_model_report_is_computed_from_the_result_files(tmp_path):
    report = _load_report()
    # The trend: metric = 2 dB per doubling exactly.
    points = [[2 ** k, 10 + 2 * k] for k in range(1, 9)]
    assert abs(report.trend_per_doubling(points, 1) - 2.0) < 1e-9
    (tmp_path / "default-model-eval").mkdir()
    cols = "method,exposure,n,masked,pu21_psnr_mean,pu21_ssim_mean,log_psnr_mean,inverse_crf_rmse_mean"
    rows = ["stages_refinement,all,10,2,25.0,0.9,30.0,0.05", "stages_dequantization_linearization,all,10,2,20.0,0.8,28.0,0.05",
            "srgb,all,10,2,23.5,0.85,27.0,0.09", "mean_crf,all,10,2,22.0,0.8,26.0,0.07",
            "true_crf,all,10,2,24.0,0.9,31.0,0.0", "srgb,+0,5,1,30.0,0.9,30.0,0.09"]
    (tmp_path / "default-model-eval" / "summary.csv").write_text("\n".join([cols] + rows) + "\n")
    (tmp_path / "default-model-eval" / "protocol.json").write_text(json.dumps(
        {"crf_spec": "dorf:x, test split", "config": {"exposure_stops": [-3, 0, 3], "jpeg_quality": 90, "resolution": 256}}))
    (tmp_path / "training-stages.json").write_text(json.dumps({"linearization": {
        "steps": 100, "batch_size": 4, "patch_size": 128, "images_seen": 400, "wall_seconds": 600}}))
    (tmp_path / "training-curves.json").write_text(json.dumps({"mean_curve_rmse": 0.08, "stages": {"linearization": {
        "eval_metrics": ["psnr", "curve_rmse"], "eval": [[100, 20, 0.1], [200, 21, 0.09], [300, 22, 0.08], [400, 23, 0.07]]}}}))
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"files": [{"bytes": 2 ** 20}], "encoder": {"source": "lpips"}}))
    text, evaluation = report.build(results=tmp_path, manifest_path=manifest)
    assert "| **hdrjax default model**: Deq + Lin + Hal + Ref (all four stages) | 25.00 | 0.9000 | 30.00 | 0.0500 | 10 |" in text
    assert "best non-oracle baseline: srgb, 23.50 dB" in text and "+1.50 dB from it (target: ≥ +1 dB) — met" in text
    assert "+1.00 dB from it (target: above it) — met" in text
    assert "0.0500, against 0.0700" in text and "| linearization | 100 × 4 | 128² | 400 | 10 min | curve_rmse 0.07 |" in text
    assert evaluation["targets"]["best_baseline"] == "srgb"


def test_readme_default_model_block_matches_the_committed_results():
    # The README's numbers on the default model are generated, never typed: regenerate them
    # with experiments/default_model_report.py after a new evaluation.
    assert _load_report().main(["--check"]) == 0
