"""The error budget (bands), the speckle figure and the curve-level diagnosis on arrays with known answers,
and `python -m hdrjax.evaluate --error-budget` end to end on a tiny run."""
import csv
import json

import numpy as np
import pytest

from hdrjax.evaluation import metrics
from hdrjax.evaluation import budget, curve_levels, speckle
from hdrjax.evaluation.loop import evaluate
from hdrjax.evaluation.methods import baseline_method, model_method
from hdrjax.evaluation.protocol import EvalConfig, Example

S = 48  # image side: the speckle region needs room for its 5×5 windows


def staircase(side=S):
    """A ground truth with a flat square in every band (values 2^-10, 2^-6, 0.2, 0.7, 3): f32[1, S, S, 3]."""
    gt = np.empty((1, side, side, 3), np.float32)
    values = (2.0 ** -10, 2.0 ** -6, 0.2, 0.7, 3.0)
    rows = np.array_split(np.arange(side), len(values))
    for v, r in zip(values, rows):
        gt[0, r] = v
    return gt, rows


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- bands


def test_band_edges_put_each_value_in_its_documented_band():
    x = np.array([0.0, 2.0 ** -8 - 1e-6, 2.0 ** -8, 0.05, 2.0 ** -4, 0.3, 0.5, 0.99, 1.0, 7.0], np.float32)
    assert np.asarray(budget.band_index(x)).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert budget.BAND_NAMES == ("deep_shadow", "shadow", "mid", "near_clipped", "clipped")


def test_a_perfect_reconstruction_has_no_error_in_any_band():
    gt, _ = staircase()
    values = {k: np.asarray(v) for k, v in budget.band_errors(gt, gt).items()}
    assert values["band_sse"].tolist() == [[0.0] * 5]
    # Each of the five squares is one band; every channel value is counted once.
    assert values["band_count"].sum() == gt.size and (values["band_count"] > 0).all()
    rows = budget.band_table([{"method": "m", "stops": 0.0, **{k: v[0] for k, v in values.items()}}], ["m"], [0.0])
    assert [r["exposure"] for r in rows] == ["+0"] * 5 + ["all"] * 5
    assert all(r["gain_db"] == 0.0 and r["error_share"] == 0.0 and r["mse"] == 0.0 for r in rows)
    assert all(r["pu21_psnr"] == np.inf for r in rows)
    assert sum(r["pixel_share"] for r in rows if r["exposure"] == "all") == pytest.approx(1.0)


def test_noise_in_the_shadows_shows_only_in_the_shadow_bands():
    gt, rows = staircase()
    rng = np.random.default_rng(0)
    pred = gt.copy()
    for r in rows[:2]:  # deep_shadow and shadow squares
        pred[0, r] *= np.exp(rng.normal(0, 0.3, pred[0, r].shape)).astype(np.float32)
    pred[0, rows[2]] *= 1.1  # and a smaller error in the mid band
    sse = np.asarray(budget.band_errors(pred, gt)["band_sse"])[0]
    assert sse[0] > 0 and sse[1] > 0 and sse[2] > 0
    assert sse[3] == 0 and sse[4] == 0


def test_bands_add_up_to_the_metrics_pu21_psnr():
    rng = np.random.default_rng(1)
    gt = np.exp(rng.normal(-2, 2, (3, 24, 24, 3))).astype(np.float32)
    pred = (gt * np.exp(rng.normal(0, 0.2, gt.shape))).astype(np.float32)
    values = {k: np.asarray(v) for k, v in budget.band_errors(pred, gt).items()}
    psnr = np.asarray(metrics.compute_all(pred, gt)["pu21_psnr"])
    mse = values["band_sse"].sum(1) / values["band_count"].sum(1)
    np.testing.assert_allclose(10 * np.log10(256.0 ** 2 / mse), psnr, rtol=1e-4)
    records = [{"method": "m", "stops": 0.0, "band_sse": values["band_sse"][i], "band_count": values["band_count"][i]}
               for i in range(3)]
    rows = budget.band_table(records, ["m"])
    assert rows[0]["pu21_psnr"] == pytest.approx(psnr.mean(), rel=1e-4)
    assert sum(r["error_share"] for r in rows) == pytest.approx(1.0)
    # Removing a band's error raises the PSNR by exactly its share, in dB, image by image.
    for b, r in enumerate(rows):
        sse = values["band_sse"].astype(np.float64)
        share = sse[:, b] / sse.sum(1)
        assert r["gain_db"] == pytest.approx(np.mean(-10 * np.log10(1 - share)), rel=1e-6)


def test_gaps_say_which_band_separates_two_methods():
    gt, rows = staircase()
    rng = np.random.default_rng(3)
    noisy = gt * np.exp(rng.normal(0, 0.2, gt.shape)).astype(np.float32)
    fixed_shadow = noisy.copy()
    fixed_shadow[0, rows[1]] = gt[0, rows[1]]  # B = A with a perfect shadow band
    records = []
    for name, pred in (("a", noisy), ("b", fixed_shadow)):
        v = {k: np.asarray(x)[0] for k, x in budget.band_errors(pred, gt).items()}
        records.append({"method": name, "stops": 0.0, "key": ("img", "crf", 0.0), **v})
    gaps = {(r["method"], r["versus"], r["band"]): r["gain_db"] for r in budget.gap_table(records, ["a", "b"])}
    table = {(r["method"], r["band"]): r for r in budget.band_table(records, ["a", "b"])}
    psnr = {m: table[(m, "mid")]["pu21_psnr"] for m in ("a", "b")}
    # A as good as B in the shadows is B: the shadow gain is the whole gap, the other bands are equal.
    assert gaps[("a", "b", "all")] > 0
    assert gaps[("a", "b", "shadow")] == pytest.approx(gaps[("a", "b", "all")], rel=1e-6)
    assert gaps[("a", "b", "all")] == pytest.approx(psnr["b"] - psnr["a"])
    assert gaps[("a", "b", "shadow")] == pytest.approx(table[("a", "shadow")]["gain_db"], rel=1e-6)
    assert all(gaps[("a", "b", band)] == 0.0 for band in budget.BAND_NAMES if band != "shadow")
    assert gaps[("b", "a", "shadow")] < 0


# ----------------------------------------------------------------------------- speckle


def smooth_dark_scene(side=S):
    """A smooth dark left half (a gentle ramp around 2^-6) and a bright right half: f32[1, S, S, 3]."""
    x = np.linspace(0, 1, side, dtype=np.float32)
    gt = np.empty((1, side, side, 3), np.float32)
    gt[0] = (2.0 ** -6 * (1 + 0.2 * x))[None, :, None] * np.array([1.0, 0.9, 0.8], np.float32)
    gt[0, :, side // 2:] = 0.6
    gt[0, 0, 0] = 4.0  # a light: the display model's peak
    return gt


def ratio(pred, gt, part="all"):
    return speckle.speckle_ratio({k: np.asarray(v) for k, v in speckle.speckle_energy(pred, gt).items()}, part)[0]


def test_a_perfect_reconstruction_has_speckle_one():
    gt = smooth_dark_scene()
    energy = {k: np.asarray(v) for k, v in speckle.speckle_energy(gt, gt).items()}
    # The dark half less the 5×5 border: a large region.
    assert 0.3 < energy["speckle_share"][0] < 0.5
    assert ratio(gt, gt) == pytest.approx(1.0, abs=1e-6)


def test_noise_in_smooth_shadows_raises_speckle_noise_in_the_light_does_not():
    gt = smooth_dark_scene()
    rng = np.random.default_rng(0)
    noise = np.exp(rng.normal(0, 0.3, gt.shape)).astype(np.float32)
    dark = gt.copy()
    dark[0, :, : S // 2] *= noise[0, :, : S // 2]
    bright = gt.copy()
    bright[0, :, S // 2:] *= noise[0, :, S // 2:]
    assert ratio(dark, gt) > 3.0
    assert ratio(bright, gt) == pytest.approx(1.0, abs=0.02)  # only the border columns of the region see it
    # Colour noise alone shows in the colour part and hardly in the luminance part.
    chroma = gt.copy()
    chroma[0, :, : S // 2, 0] *= noise[0, :, : S // 2, 0]
    chroma[0, :, : S // 2, 2] /= noise[0, :, : S // 2, 0]
    assert ratio(chroma, gt, "chroma") > 2 * ratio(chroma, gt, "lum")
    # 8×8 blocks (a JPEG's) in the smooth shadow are speckle too; a uniform gain is not.
    blocks = gt.copy()
    step = np.kron(rng.uniform(0.8, 1.25, (S // 8, S // 8)), np.ones((8, 8))).astype(np.float32)
    blocks[0, :, : S // 2] *= step[:, : S // 2, None]
    assert ratio(blocks, gt) > 1.5
    assert ratio(gt * np.float32(1.2), gt) == pytest.approx(1.0, abs=1e-3)


def test_textured_or_bright_scenes_have_no_speckle_region():
    rng = np.random.default_rng(2)
    textured = (2.0 ** -6 * np.exp(rng.normal(0, 1.0, (1, S, S, 3)))).astype(np.float32)
    textured[0, 0, 0] = 4.0
    assert np.isnan(ratio(textured, textured))
    bright = np.full((1, S, S, 3), 0.5, np.float32)
    assert np.isnan(ratio(bright, bright))


# ----------------------------------------------------------------------------- curve levels


def test_curve_levels_weigh_the_error_by_pixels_and_pu21():
    n = 1024
    true = np.linspace(0, 1, n, dtype=np.float32) ** 2.2
    x = np.linspace(0, 1, n)
    dark_err = true + np.where(x < 0.25, 0.01, 0.0).astype(np.float32)
    bright_err = true + np.where(x > 0.75, 0.01, 0.0).astype(np.float32)
    gt = np.ones((1, 4, 4, 3), np.float32)
    dark_pixels = np.full((1, 4, 4, 3), 0.1, np.float32)
    meta = [{"stops": 0.0, "inverse_crf": true}]
    rec = {name: curve_levels.sample_records(name, dark_pixels, gt, c[None], meta)[0]
           for name, c in (("true", true), ("dark", dark_err), ("bright", bright_err))}
    assert rec["true"]["curve_psnr"] == np.inf and not rec["true"]["err"].any()
    # The same linear error costs far more PU21 in the shadows than in the highlights.
    assert np.abs(rec["dark"]["pu_err"]).max() > 5 * np.abs(rec["bright"]["pu_err"]).max()
    # Every pixel sits at 0.1: the bright error is invisible to the image, not to the curve RMSE.
    assert rec["bright"]["curve_psnr"] == np.inf and rec["dark"]["curve_psnr"] < 60
    rows = curve_levels.level_table(list(rec.values()), ["dark", "bright"])
    by = {(r["method"], r["bin"]): r for r in rows}
    assert by[("dark", "all")]["curve_rmse"] == pytest.approx(by[("bright", "all")]["curve_rmse"], rel=0.02)
    assert by[("bright", "all")]["pu21_rmse"] == 0.0 and by[("dark", "all")]["pu21_rmse"] > 0.0
    code = round(0.1 * 255) // 16
    assert by[("dark", str(code))]["pixel_share"] == 1.0 and by[("dark", str(code))]["pu21_error_share"] == 1.0
    assert by[("dark", "0")]["curve_bias"] == pytest.approx(0.01, rel=1e-3)
    assert by[("dark", "all")]["curve_psnr"] == pytest.approx(rec["dark"]["curve_psnr"])


# ----------------------------------------------------------------------------- end to end


def test_evaluate_with_an_error_budget_on_the_tiny_model(tiny_model, tiny_variables):
    gt = smooth_dark_scene(64)[0] * np.float32(16)
    methods = [model_method(tiny_model, tiny_variables, name="stages_dequantization_linearization"),
               baseline_method("srgb")]
    from hdrjax.camera import crf

    bank = crf.load_bank("family", "test").take([0])
    config = EvalConfig(resolution=32, full_image=True, exposure_stops=(-4.0, 0.0), mask="include", batch_size=2)
    result = evaluate([Example("scene", gt)], methods, config, bank=bank, error_budget=True)
    assert set(result.budget) == {"bands", "gaps", "speckle", "curves"}
    names = [m.name for m in methods]
    bands = result.budget["bands"]
    assert [(r["method"], r["exposure"]) for r in bands[::5]] == [(m, e) for m in names for e in ("-4", "+0", "all")]
    summary = {(r["method"], r["exposure"]): r for r in result.summary}
    for r in bands:
        assert r["pu21_psnr"] == pytest.approx(summary[(r["method"], r["exposure"])]["pu21_psnr_mean"], rel=1e-5)
    assert {r["method"] for r in result.budget["curves"]} == set(names)
    assert "speckle" in result.metric_names


def test_cli_error_budget_writes_the_three_tables(tmp_path, capsys):
    from hdrjax.evaluate import main
    from hdrjax.io import write_image

    folder = tmp_path / "hdr"
    folder.mkdir()
    write_image(folder / "scene.exr", smooth_dark_scene(64)[0] * np.float32(16))
    out = tmp_path / "out"
    code = main([str(folder), "--workdir", str(out), "--methods", "srgb,true_crf", "--resolution", "48",
                 "--max-crfs", "1", "--exposures=0", "--mask", "include", "--error-budget", "-q"])
    assert code == 0, capsys.readouterr().err
    assert {"bands.csv", "gaps.csv", "speckle.csv", "curves.csv"} <= {p.name for p in out.iterdir()}
    gaps = {(r["method"], r["versus"], r["band"]): float(r["gain_db"]) for r in read_csv(out / "gaps.csv")}
    assert len(gaps) == 2 * 6  # (srgb vs true_crf, true_crf vs srgb) × (5 bands, all)
    assert gaps[("srgb", "true_crf", "all")] == pytest.approx(-gaps[("true_crf", "srgb", "all")], abs=1e-9)
    bands = read_csv(out / "bands.csv")
    assert list(bands[0]) == list(budget.BUDGET_FIELDS)
    assert len(bands) == 2 * 2 * 5  # 2 methods × (+0, all) × 5 bands
    summary = {(r["method"], r["exposure"]): r for r in read_csv(out / "summary.csv")}
    for r in bands:
        assert float(r["pu21_psnr"]) == pytest.approx(float(summary[(r["method"], r["exposure"])]["pu21_psnr_mean"]),
                                                      rel=1e-4)
    curves = {(r["method"], r["bin"]): r for r in read_csv(out / "curves.csv")}
    assert float(curves[("true_crf", "all")]["curve_rmse"]) == 0.0 and curves[("true_crf", "all")]["curve_psnr"] == "inf"
    assert float(curves[("srgb", "all")]["curve_rmse"]) > 0.0
    assert [r["method"] for r in read_csv(out / "speckle.csv")] == ["srgb", "true_crf"]
    assert "speckle_mean" in summary[("srgb", "all")]
    proto = json.loads((out / "protocol.json").read_text())
    assert proto["error_budget"]["bands"]["clipped"] == [1.0, None]
    # Without the flag: no budget files, the speckle figure still in the summary.
    out2 = tmp_path / "out2"
    assert main([str(folder), "--workdir", str(out2), "--methods", "srgb", "--resolution", "48", "--max-crfs", "1",
                 "--exposures=0", "--mask", "include", "-q"]) == 0
    assert not (out2 / "bands.csv").exists() and "speckle_mean" in read_csv(out2 / "summary.csv")[0]


def test_dequantization_through_the_true_curve_is_the_oracle_when_deq_is_the_identity(tiny_model, tiny_variables):
    from hdrjax.evaluation.methods import ablate_variables, dequantization_true_crf_method, true_crf_method
    from hdrjax.camera import crf

    rng = np.random.default_rng(0)
    ldr = rng.uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)
    bank = crf.load_bank("family", "test")
    meta = [{"inverse_crf": np.asarray(bank.inverse[i])} for i in range(2)]
    identity = ablate_variables(tiny_variables, "no_dequantization")
    method = dequantization_true_crf_method(tiny_model, identity)
    assert method.synthetic_only and method.name == "stages_dequantization_true_crf"
    got, curves = method.run(ldr, meta)
    want, want_curves = true_crf_method().run(ldr, meta)
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_array_equal(curves, want_curves)
    # With the (random) Dequantization-Net the image changes.
    assert np.abs(dequantization_true_crf_method(tiny_model, tiny_variables).run(ldr, meta)[0] - want).max() > 1e-4
