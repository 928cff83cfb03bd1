"""`python -m hdrjax.evaluate` on tiny synthetic folders with the baselines (no network needed).

Images are 40×56 HDR scenes evaluated at --resolution 32 (two 32² crops each), with 2 test
CRFs and 3 exposures, so every run is a few seconds after the first compile. The last tests
load a shipped-model folder of the tiny model (tests/conftest.py: `tiny_shipped_model`) for
`--checkpoint <folder>|default` and the stage-prefix methods: their plumbing is under test.
"""
import csv
import json

import numpy as np
import pytest
from PIL import Image

from hdrjax import cli
from hdrjax.evaluate import main as evaluate_main
from hdrjax.evaluation.loop import evaluate, summarize
from hdrjax.evaluation.methods import DEQ_TRUE_CRF, STAGE_METHODS, baseline_method, mean_crf_method, parse_methods
from hdrjax.evaluation.protocol import EvalConfig, EvalError, Example, open_source
from hdrjax.evaluation.report import ROW_FIELDS
from hdrjax.camera import crf
from hdrjax.io import write_image
from hdrjax.evaluation.metrics import METRIC_NAMES

BASE = ["--resolution", "32", "--max-crfs", "2", "--exposures=-3,0,3", "--batch-size", "4"]


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def run(args, capsys):
    code = evaluate_main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_folder_writes_per_image_csv_and_summary(hdr_folder, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run([hdr_folder, "--workdir", out, "--methods", "identity,gamma22,true_crf"] + BASE, capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["per_image.csv", "protocol.json", "summary.csv", "summary.md"]
    rows = read_csv(out / "per_image.csv")
    header = list(rows[0])
    assert header[:7] == list(ROW_FIELDS)
    # speckle: a column only when some sample has a smooth dark region (hdrjax/evaluation/speckle.py)
    assert header[7:] == list(METRIC_NAMES) + ["inverse_crf_rmse"] + (["speckle"] if "speckle" in header else [])
    # 3 methods × 2 images × 2 crops × 2 CRFs × 3 exposures.
    assert len(rows) == 3 * 2 * 2 * 2 * 3
    assert {r["image"] for r in rows} == {"a_0", "a_1", "b_0", "b_1"}
    assert {r["stops"] for r in rows} == {"-3", "+0", "+3"}
    assert {r["exposure"] for r in rows} == {"0.125", "1", "8"}
    assert {r["jpeg_quality"] for r in rows} == {"90"}
    test_crfs = crf.load_bank("camera", "test").names[:2]  # the default --crf
    assert {r["crf"] for r in rows} == set(test_crfs)
    for r in rows:
        if r["mask"] == "1":
            assert all(r[m] not in ("", "nan") for m in METRIC_NAMES)
        else:
            assert all(r[m] == "" for m in METRIC_NAMES)
    # The oracle's curve is the true one; the identity's is a straight line (error > 0).
    assert all(float(r["inverse_crf_rmse"]) == 0.0 for r in rows if r["method"] == "true_crf" and r["mask"] == "1")
    assert all(float(r["inverse_crf_rmse"]) > 0.01 for r in rows if r["method"] == "identity" and r["mask"] == "1")

    summary = read_csv(out / "summary.csv")
    assert [(r["method"], r["exposure"]) for r in summary] == [
        (m, e) for m in ("identity", "gamma22", "true_crf") for e in ("-3", "+0", "+3", "all")]
    assert list(summary[0])[:4] == ["method", "exposure", "n", "masked"]
    assert "pu21_psnr_mean" in summary[0] and "pu21_psnr_std" in summary[0]
    for s in summary:
        group = [r for r in rows
                 if r["method"] == s["method"] and (s["exposure"] == "all" or r["stops"] == s["exposure"])]
        kept = [float(r["tone_psnr"]) for r in group if r["mask"] == "1"]
        assert int(s["n"]) == len(kept) and int(s["masked"]) == len(group) - len(kept)
        if kept:
            assert float(s["tone_psnr_mean"]) == pytest.approx(np.mean(kept), rel=1e-4)
    md = (out / "summary.md").read_text()
    assert "JPEG quality 90" in md and "## Overall" in md and "## Per exposure" in md and "±" in md
    assert md == stdout
    proto = json.loads((out / "protocol.json").read_text())
    assert proto["kind"] == "synthetic" and proto["crfs"] == list(test_crfs)
    assert proto["config"]["exposures"] == [0.125, 1.0, 8.0] and proto["normalization"] == "reference"
    assert proto["examples"] == 4 and proto["skipped"] == []


def test_mask_excludes_extreme_samples_from_the_means(tmp_path, hdr_scene):
    # A scene bright enough that +3 stops saturates nearly everything, dark enough that −3
    # stops is mostly black: the masks must differ across exposures and drive the means.
    flat = hdr_scene(2, 32, 32, light=0.0)
    examples = [Example("plain", flat * np.float32(0.5 / flat.mean()))]
    bank = crf.load_bank("family", "test").take([0, 1])
    cfg = EvalConfig(exposure_stops=(-3.0, 0.0, 3.0), batch_size=4)
    result = evaluate(examples, [baseline_method("identity")], cfg, bank=bank)
    by_stop = {s: [r for r in result.rows if r["stops"] == s] for s in cfg.exposure_stops}
    assert all(r["mask"] == 0 for r in by_stop[3.0])  # saturated: excluded
    assert all(r["mask"] == 1 for r in by_stop[0.0])
    assert all("pu21_psnr" not in r for r in by_stop[3.0])
    overall = next(r for r in result.summary if r["exposure"] == "all")
    kept = [r["pu21_psnr"] for r in result.rows if r["mask"] == 1]
    assert overall["n"] == len(kept) and overall["masked"] == len(result.rows) - len(kept)
    assert overall["pu21_psnr_mean"] == pytest.approx(np.mean(kept))
    plus3 = next(r for r in result.summary if r["exposure"] == "+3")
    assert plus3["n"] == 0 and plus3["masked"] == 2 and plus3["pu21_psnr_mean"] is None

    # --mask include: the same samples are scored and averaged.
    inc = evaluate(examples, [baseline_method("identity")], EvalConfig(
        exposure_stops=(-3.0, 0.0, 3.0), batch_size=4, mask="include"), bank=bank)
    overall_inc = next(r for r in inc.summary if r["exposure"] == "all")
    assert overall_inc["n"] == len(inc.rows) == 6 and overall_inc["masked"] == overall["masked"]
    # Kept samples score identically in both modes (deterministic synthesis).
    same = [r["pu21_psnr"] for r in inc.rows if r["mask"] == 1]
    np.testing.assert_allclose(same, kept, rtol=1e-6)


def test_summarize_uses_only_scored_rows():
    rows = [
        {"method": "m", "stops": 0.0, "mask": 1, "x": 1.0},
        {"method": "m", "stops": 0.0, "mask": 1, "x": 3.0},
        {"method": "m", "stops": 0.0, "mask": 0},
        {"method": "m", "stops": 1.0, "mask": 0},
    ]
    s = summarize(rows, ["m"], ["x"], (0.0, 1.0))
    assert [r["exposure"] for r in s] == ["+0", "+1", "all"]
    assert (s[0]["n"], s[0]["masked"], s[0]["x_mean"], s[0]["x_std"]) == (2, 1, 2.0, pytest.approx(np.sqrt(2)))
    assert (s[1]["n"], s[1]["masked"], s[1]["x_mean"], s[1]["x_std"]) == (0, 1, None, None)
    assert (s[2]["n"], s[2]["masked"]) == (2, 2)


def test_results_do_not_depend_on_limit_or_batch_size(hdr_folder):
    bank = crf.load_bank("family", "test").take([0, 1])
    cfg = EvalConfig(resolution=32, exposure_stops=(0.0, 1.0), batch_size=3)
    methods = [baseline_method("srgb")]
    _, examples = open_source(str(hdr_folder), cfg)
    full = evaluate(examples, methods, cfg, bank=bank)
    _, examples = open_source(str(hdr_folder), cfg)
    first = evaluate(examples, methods, EvalConfig(resolution=32, exposure_stops=(0.0, 1.0), batch_size=1),
                     bank=bank, limit=1)
    assert first.protocol["examples"] == 1 and full.protocol["examples"] == 4
    head = [r for r in full.rows if r["image"] == first.rows[0]["image"]]
    assert len(head) == len(first.rows) == 4
    for a, b in zip(head, first.rows):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-5) if isinstance(a[k], float) else a[k] == b[k]
    # Another seed changes the synthesis noise, hence the numbers.
    _, examples = open_source(str(hdr_folder), cfg)
    other = evaluate(examples, methods, EvalConfig(resolution=32, exposure_stops=(0.0, 1.0), seed=1),
                     bank=bank, limit=1)
    assert any(a.get("mu_psnr") != b.get("mu_psnr") for a, b in zip(first.rows, other.rows) if a["mask"])


def test_bad_file_is_skipped_counted_and_fails_the_run(hdr_folder, tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a.exr").write_bytes((hdr_folder / "a.exr").read_bytes())
    (folder / "broken.exr").write_bytes(b"v/1\x01" + b"\x00" * 40)
    (folder / "empty.hdr").write_bytes(b"")
    out = tmp_path / "out"
    code, stdout, err = run([folder, "--workdir", out, "--methods", "identity"] + BASE, capsys)
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and any(str(folder / "broken.exr") in e for e in errors)
    assert any(str(folder / "empty.hdr") in e for e in errors)
    assert "Traceback" not in err
    proto = json.loads((out / "protocol.json").read_text())
    assert len(proto["skipped"]) == 2 and proto["examples"] == 2
    assert {r["image"] for r in read_csv(out / "per_image.csv")} == {"a_0", "a_1"}
    assert "Skipped inputs (2)" in stdout


def test_input_warning_is_one_line_without_a_source_line(hdr_folder, tmp_path, capsys, hdr_scene):
    # A negative value in an HDR file is replaced by 0 with an io.NonFiniteWarning: the CLI
    # prints it as one `warning:` line (hdrjax.cli), not Python's "file:line: Category" + source.
    folder = tmp_path / "negative"
    folder.mkdir()
    image = hdr_scene(4)
    image[0, 0, 0] = -1.0
    write_image(folder / "neg.exr", image)
    code, _, err = run([folder, "--workdir", tmp_path / "out", "--methods", "identity"] + BASE, capsys)
    assert code == 0, err
    lines = [line for line in err.splitlines() if "replaced" in line]
    assert lines == [f"warning: {folder / 'neg.exr'}: replaced 1 negative -> 0 (counts of channel values)"]
    assert "NonFiniteWarning" not in err and "warnings.warn" not in err and ".py:" not in err


def test_real_pairs_mode(tmp_path, capsys, hdr_scene):
    root = tmp_path / "real"
    (root / "HDR_gt").mkdir(parents=True)
    (root / "LDR_in").mkdir()
    for i in range(2):
        hdr = hdr_scene(10 + i, 36, 48)
        write_image(root / "HDR_gt" / f"p{i}.hdr", hdr)
        ldr = np.clip(hdr / hdr.mean() * 0.4, 0, 1) ** (1 / 2.2)
        Image.fromarray(np.round(ldr * 255).astype(np.uint8)).save(root / "LDR_in" / f"p{i}.jpg", quality=95)
    out = tmp_path / "out"
    code, stdout, err = run([root, "--workdir", out, "--resolution", "32", "--methods", "identity,srgb,true_crf"],
                            capsys)
    assert code == 0, err
    assert "true_crf: synthetic only" in err
    rows = read_csv(out / "per_image.csv")
    assert len(rows) == 2 * 2 * 2  # 2 methods × 2 pairs × 2 crops
    assert {r["crf"] for r in rows} == {"camera"} and {r["stops"] for r in rows} == {""}
    assert {r["image"] for r in rows} == {"p0_0", "p0_1", "p1_0", "p1_1"}
    assert "inverse_crf_rmse" not in rows[0]
    summary = read_csv(out / "summary.csv")
    assert [(r["method"], r["exposure"]) for r in summary] == [("identity", "all"), ("srgb", "all")]
    proto = json.loads((out / "protocol.json").read_text())
    assert proto["kind"] == "real" and proto["normalization"] == "authors"
    assert "real LDR/HDR pairs" in stdout and "## Per exposure" not in stdout


def test_real_pair_smaller_than_crop_is_skipped(tmp_path, capsys, hdr_scene):
    root = tmp_path / "real"
    (root / "HDR_gt").mkdir(parents=True)
    (root / "LDR_in").mkdir()
    write_image(root / "HDR_gt" / "tiny.hdr", hdr_scene(3, 20, 24))
    Image.fromarray(np.zeros((20, 24, 3), np.uint8) + 100).save(root / "LDR_in" / "tiny.jpg")
    code, _, err = run([root, "--workdir", tmp_path / "out", "--resolution", "32", "--methods", "identity"], capsys)
    assert code == cli.ERROR_EXIT
    assert "smaller than the 32x32 test crop" in err and "no test image could be read" in err


@pytest.mark.parametrize("args, message", [
    (["--methods", "model"], "need(s) --checkpoint"),
    (["--methods", "magic"], "unknown method 'magic'"),
    (["--crf", "dorf:/nonexistent.npz"], "--crf:"),
    (["--exposures=a,b"], "--exposures"),
])
def test_user_errors_are_one_line(hdr_folder, tmp_path, capsys, args, message):
    code, _, err = run([hdr_folder, "--workdir", tmp_path / "o"] + BASE + args, capsys)
    assert code == cli.ERROR_EXIT
    assert message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1


def test_missing_source_is_an_error(tmp_path, capsys):
    code, _, err = run([tmp_path / "nope", "--workdir", tmp_path / "o"], capsys)
    assert code == cli.ERROR_EXIT and "no such file or folder" in err


def test_scalars_for_tensorboard(hdr_folder):
    bank = crf.load_bank("family", "test").take([0])
    cfg = EvalConfig(resolution=32, exposure_stops=(0.0,))
    _, examples = open_source(str(hdr_folder), cfg)
    result = evaluate(examples, [baseline_method("g0")], cfg, bank=bank, limit=2)
    scalars = result.scalars("eval")
    assert "eval/g0/pu21_psnr" in scalars and "eval/g0/pu21_psnr/ev+0" in scalars
    assert all(np.isfinite(v) for v in scalars.values())


def test_ground_truth_is_noise_free_unless_asked(hdr_folder):
    bank = crf.load_bank("family", "test").take([0])
    methods = [baseline_method("srgb")]

    def scores(**kw):
        cfg = EvalConfig(resolution=32, exposure_stops=(0.0,), **kw)
        _, examples = open_source(str(hdr_folder), cfg)
        rows = evaluate(examples, methods, cfg, bank=bank, limit=1).rows
        return np.array([r["mu_psnr"] for r in rows if r["mask"]])

    # Without synthesis noise the noisy X equals H·t: both targets score the same.
    np.testing.assert_allclose(scores(noise=False, target="noisy"), scores(noise=False, target="clean"), rtol=1e-6)
    # With noise the input is the same, only the reference changes.
    assert not np.allclose(scores(target="noisy"), scores(target="clean"))
    with pytest.raises(EvalError, match="target must be"):
        EvalConfig(target="dirty")


# ----------------------------------------------------------------------------- mean_crf, stages


def test_mean_crf_is_the_training_split_mean(hdr_folder, tmp_path, capsys):
    train = crf.load_bank("camera", "train")
    mean = np.mean(np.asarray(train.inverse, np.float64), axis=0)
    method = mean_crf_method("camera")
    ldr = np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 3)).astype(np.float32)
    hdr, curves = method.run(ldr, [{}, {}])
    np.testing.assert_allclose(curves, np.broadcast_to(mean, curves.shape), atol=1e-6)
    # Applied to the JPEG exactly like the other global-curve baselines.
    np.testing.assert_allclose(hdr, np.interp(ldr, np.linspace(0, 1, mean.size), mean), atol=1e-5)
    assert method.kind == "baseline" and method.info == {"crf_spec": "camera, train split", "curves": len(train)}
    # (g0 is the mean of the basis the model is built on, fitted to the parametric family:
    # another curve than this bank's mean.)

    out = tmp_path / "out"
    code, _, err = run([hdr_folder, "--workdir", out, "--methods", "mean_crf,g0"] + BASE, capsys)
    assert code == 0, err
    rows = [r for r in read_csv(out / "per_image.csv") if r["mask"] == "1"]
    test_bank = crf.load_bank("camera", "test")
    for r in rows:
        if r["method"] == "mean_crf":
            want = np.sqrt(np.mean((mean - test_bank.inverse[test_bank.index(r["crf"])]) ** 2))
            assert float(r["inverse_crf_rmse"]) == pytest.approx(want, rel=1e-4)
    proto = json.loads((out / "protocol.json").read_text())
    assert proto["methods"][0] == {"name": "mean_crf", "kind": "baseline",
                                   "info": {"crf_spec": "camera, train split", "curves": len(train)}}
    assert "mean_crf" in parse_methods("baselines", have_model=False)


def test_mean_crf_of_dorf_averages_its_191_training_curves(shared_data):
    path = shared_data("crf", "dorf_201.npz")
    method = mean_crf_method(f"dorf:{path}")
    assert method.info["curves"] == 191
    train = crf.load_bank(f"dorf:{path}", "train")
    _, curves = method.run(np.zeros((1, 4, 4, 3), np.float32), [{}])
    np.testing.assert_allclose(curves[0], np.mean(np.asarray(train.inverse, np.float64), 0), atol=1e-6)
    with pytest.raises(EvalError, match="--crf"):
        mean_crf_method("dorf:/nonexistent.npz")


def test_stage_methods_parse():
    stages = list(STAGE_METHODS)
    assert stages == ["stages_dequantization_linearization", "stages_hallucination", "stages_refinement"]
    assert parse_methods("model,stages", have_model=True) == ["model", DEQ_TRUE_CRF] + stages
    # Without a trained Refinement-Net (not a joint checkpoint) the group stops at hallucination.
    assert parse_methods("stages", have_model=True, joint=False) == [DEQ_TRUE_CRF] + stages[:2]
    assert set(stages) <= set(parse_methods("all", have_model=True))
    assert not set(stages) & set(parse_methods("all", have_model=False))
    with pytest.raises(EvalError, match=r"stages_hallucination need\(s\) --checkpoint"):
        parse_methods("stages_hallucination", have_model=False)


@pytest.mark.slow
def test_shipped_model_and_stage_prefixes(tiny_shipped_model, hdr_folder, tmp_path, capsys):
    out = tmp_path / "eval"
    code, _, err = run([hdr_folder, "--workdir", out, "--checkpoint", tiny_shipped_model,
                        "--methods", "model,stages,no_refinement", "--resolution", "32", "--max-crfs", "1",
                        "--exposures=0", "--limit", "1", "--mask", "include"], capsys)
    assert code == 0, err
    rows = read_csv(out / "per_image.csv")
    by = {m: [r for r in rows if r["method"] == m] for m in dict.fromkeys(r["method"] for r in rows)}
    assert list(by) == ["model", DEQ_TRUE_CRF, "stages_dequantization_linearization", "stages_hallucination",
                        "stages_refinement", "no_refinement"]
    assert all(len(v) == 1 for v in by.values())  # 1 patch × 1 CRF × 1 exposure
    (model,), (deq,), (lin,), (hal,), (ref,), (nr,) = by.values()
    assert float(deq["inverse_crf_rmse"]) == 0.0  # the oracle's curve
    # Every stage prefix has the Linearization-Net's curve, hence the same inverse_crf_rmse.
    for r in (lin, hal, ref):
        assert float(r["inverse_crf_rmse"]) == pytest.approx(float(model["inverse_crf_rmse"]), abs=1e-6)
    # The smoke checkpoint is joint: the full prefix is the model, hallucination = no_refinement.
    for m in METRIC_NAMES:
        assert float(ref[m]) == pytest.approx(float(model[m]), rel=1e-6, abs=1e-6)
        assert float(hal[m]) == pytest.approx(float(nr[m]), rel=1e-6, abs=1e-6)
    assert float(lin["tone_psnr"]) != pytest.approx(float(hal["tone_psnr"]), abs=1e-6)
    proto = json.loads((out / "protocol.json").read_text())
    assert proto["checkpoint"]["path"] == str(tiny_shipped_model) and proto["checkpoint"]["step"] == 123456
    assert proto["checkpoint"]["output_stage"] == "refinement"
    assert [m["kind"] for m in proto["methods"]] == ["model", "stages", "stages", "stages", "stages", "ablation"]


@pytest.mark.slow
def test_checkpoint_default_is_the_packaged_model(tiny_shipped_model, hdr_folder, tmp_path, capsys, monkeypatch):
    from hdrjax.weights import pretrained

    monkeypatch.setattr(pretrained, "DEFAULT_DIR", tiny_shipped_model)
    from hdrjax.weights import pretrained

    assert pretrained.is_model_dir("default") and pretrained.is_model_dir(tiny_shipped_model)
    assert not pretrained.is_model_dir(tmp_path)
    out = tmp_path / "eval"
    code, _, err = run([hdr_folder, "--workdir", out, "--checkpoint", "default", "--methods",
                        "stages_dequantization_linearization,mean_crf", "--resolution", "32", "--max-crfs", "1",
                        "--exposures=0", "--limit", "1", "--mask", "include"], capsys)
    assert code == 0, err
    rows = read_csv(out / "per_image.csv")
    assert [r["method"] for r in rows] == ["stages_dequantization_linearization", "mean_crf"]
    assert all(r["inverse_crf_rmse"] not in ("", "nan") for r in rows)
    assert json.loads((out / "protocol.json").read_text())["checkpoint"]["path"] == "default"

    # A broken shipped folder is one error line naming the file.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    code, _, err = run([hdr_folder, "--workdir", tmp_path / "o", "--checkpoint", broken, "--methods", "model"]
                       + BASE, capsys)
    assert code == cli.ERROR_EXIT and "manifest.json: not valid JSON" in err and "Traceback" not in err
