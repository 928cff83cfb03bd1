"""The regions engine (hdrjax.inference.regions, hdrjax.inference.crop_plan): the Hallucination-Net only around
lit pixels, one pass or owned crops under a memory budget — checked against one pass.

The stand-in model of test_predict_tiling has SingleHDR's methods and a receptive field of a
few pixels, so any planning, ownership or alignment bug shows up as an O(0.1) difference.
"""
import numpy as np
import pytest

from hdrjax import predict
from hdrjax.inference import crop_plan, networks, receptive_field, regions
from hdrjax.inference.crop_plan import CELL
from hdrjax.models.hallucination import BLEND_THRESHOLD

from test_predict_tiling import ALL, photo_like, standin  # noqa: F401  (fixture)


def cells(rows: list[str]) -> np.ndarray:
    """A lit-cell mask from a picture: '#' lit, '.' not."""
    return np.array([[ch == "#" for ch in row] for row in rows], bool)


def covered_with_context(p: crop_plan.RegionPlan, lit: np.ndarray, r: int) -> None:
    """Every lit cell is owned by a crop that holds r cells around it (or reaches the border)."""
    hc, wc = lit.shape
    assert ((p.owner >= 0) == lit).all(), "owned cells are exactly the lit cells"
    for cy, cx in zip(*np.nonzero(lit)):
        c = p.crops[p.owner[cy, cx]]
        y0, x0, y1, x1 = c.y // CELL, c.x // CELL, (c.y + c.h) // CELL, (c.x + c.w) // CELL
        assert y0 <= cy < y1 and x0 <= cx < x1
        assert cy - y0 >= r or y0 == 0, (cy, cx, c)
        assert y1 - 1 - cy >= r or y1 == hc, (cy, cx, c)
        assert cx - x0 >= r or x0 == 0, (cy, cx, c)
        assert x1 - 1 - cx >= r or x1 == wc, (cy, cx, c)
    for c in p.crops:
        assert c.y % CELL == 0 and c.x % CELL == 0 and c.h % CELL == 0 and c.w % CELL == 0
        assert c.y + c.h <= hc * CELL and c.x + c.w <= wc * CELL


def test_plan_no_highlight_runs_nothing():
    p = crop_plan.plan(np.zeros((10, 14), bool), 64)
    assert p.crops == () and (p.owner == -1).all() and p.work_fraction == 0.0


def test_plan_all_highlight_is_one_pass():
    p = crop_plan.plan(np.ones((10, 14), bool), 64)
    assert [(c.y, c.x, c.h, c.w) for c in p.crops] == [(0, 0, 320, 448)]
    assert p.work_fraction == 1.0 and (p.owner == 0).all()


def test_plan_regions_at_borders_keep_context_inside_the_image():
    lit = cells([
        "#.................#",
        "...................",
        "...................",
        "...................",
        "...................",
        "...................",
        "...................",
        "...................",
        "...................",
        "...................",
        "...................",
        "#.................#",
    ])
    p = crop_plan.plan(lit, 64)  # 2 cells of context
    assert len(p.crops) == 4  # four far-apart corners: four crops, not the whole image
    covered_with_context(p, lit, 2)
    assert p.work_fraction < 0.25


def test_plan_touching_regions_share_one_crop():
    lit = cells([
        "....................",
        "....##..............",
        "....##.#............",
        ".......#............",
        "....................",
        "....................",
        "....................",
        "....................",
        "....................",
        "....................",
        "...............#....",
        "....................",
    ])
    p = crop_plan.plan(lit, 32)
    covered_with_context(p, lit, 1)
    # The far cell has a crop of its own; the touching blobs share one crop or get two
    # overlapping ones, whichever costs fewer pixels — never more than separate boxes would.
    far = p.owner[10, 15]
    assert far not in (p.owner[1, 4], p.owner[3, 7]) and len(p.crops) <= 3
    single = crop_plan.plan(lit & (np.arange(20)[None, :] < 12), 32)
    assert single.crop_pixels <= 30 * CELL * CELL  # one 5×6-cell box is the most it may cost


def test_plan_overlapping_boxes_merge_when_cheaper_and_split_under_max_side():
    lit = np.zeros((40, 40), bool)
    lit[5:35, 5:35] = True  # one big region: 30 cells + context
    p = crop_plan.plan(lit, 64, max_side=12)
    assert len(p.crops) > 4 and all(max(c.h, c.w) <= 12 * CELL for c in p.crops)
    covered_with_context(p, lit, 2)
    with pytest.raises(ValueError, match="context"):
        crop_plan.plan(lit, 192, max_side=12)  # 6 cells each side leave no room


def test_bucketed_crop_sides_are_few():
    sides = set()
    for h, w in ((20, 30), (33, 47), (64, 64), (25, 90)):
        lit = np.zeros((h, w), bool)
        lit[h // 2, w // 3] = True
        lit[h // 3, (2 * w) // 3] = True
        for c in crop_plan.plan(lit, 96).crops:
            sides.update({c.h // CELL, c.w // CELL})
    assert sides <= set(crop_plan.BUCKETS), sides


def test_needed_cells_is_a_chebyshev_dilation():
    lit = np.zeros((256, 256), bool)
    lit[100, 40] = True
    need = crop_plan.needed_cells(lit, 40)
    ys, xs = np.nonzero(need)
    # pixels 60..140 × 0..80 → cells 1..4 × 0..2
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (1, 4, 0, 2)


# ------------------------------------------------------------------------- the engine


def run_regions(model, variables, ldr, **kw):
    kw.setdefault("hallucination_context", 24)
    return predict.reconstruct(model, variables, ldr, predict.PredictConfig(engine="regions", stages=ALL, **kw))


def onepass(model, variables, ldr):
    return predict.reconstruct(model, variables, ldr, predict.PredictConfig(engine="one-pass", stages=ALL))


def test_regions_equal_one_pass_where_alpha_positive(standin):  # noqa: F811
    model, variables = standin
    ldr = photo_like(300, 460, seed=3)
    full = onepass(model, variables, ldr)
    r = run_regions(model, variables, ldr)
    lit = networks.lit_mask(full.linear, BLEND_THRESHOLD)
    assert 0.005 < lit.mean() < 0.5 and 0.0 < r.stats["hallucination_work"] < 1.0
    scale = full.hallucinated.max() - full.hallucinated.min()
    assert np.abs(r.hallucinated - full.hallucinated)[lit].max() <= 1e-3 * scale
    # Elsewhere the network does not matter: A = B exactly.
    np.testing.assert_array_equal(r.hallucinated[~lit], r.linear[~lit])
    np.testing.assert_array_equal(full.hallucinated[~lit], full.linear[~lit])
    np.testing.assert_allclose(r.refined, full.refined, atol=1e-5)
    assert np.abs(full.hallucinated - full.linear).max() > 0.05  # not vacuous


def test_too_little_context_is_caught_by_the_comparison(standin):  # noqa: F811
    """The equality check above can fail: context 0 leaves lit pixels at crop edges wrong."""
    model, variables = standin
    ldr = photo_like(300, 460, seed=3) * 0.6
    for y, x in ((64, 64), (192, 352), (32, 256)):  # lights filling whole cells: lit pixels
        ldr[y : y + 40, x : x + 40] = 1.0  # right at the edge of a crop without context
    full = onepass(model, variables, ldr)
    lit = networks.lit_mask(full.linear, BLEND_THRESHOLD)
    assert 0 < lit.mean() < 0.05
    good = run_regions(model, variables, ldr)
    scale = full.hallucinated.max() - full.hallucinated.min()
    assert np.abs(good.hallucinated - full.hallucinated)[lit].max() <= 1e-3 * scale
    r = run_regions(model, variables, ldr, hallucination_context=0)
    assert r.stats["hallucination_work"] < 0.2
    assert np.abs(r.hallucinated - full.hallucinated)[lit].max() > 1e-2


def test_no_highlight_and_all_highlight_images(standin):  # noqa: F811
    model, variables = standin
    dark = np.full((90, 70, 3), 0.2, np.float32)
    r = run_regions(model, variables, dark)
    assert r.stats["hallucination_crops"] == 0 and r.stats["lit_fraction"] == 0.0
    np.testing.assert_array_equal(r.hallucinated, r.linear)
    sky = np.ones((90, 70, 3), np.float32)
    r, full = run_regions(model, variables, sky), onepass(model, variables, sky)
    assert r.stats["hallucination_crops"] == 1 and r.stats["hallucination_work"] == 1.0
    np.testing.assert_allclose(r.refined, full.refined, atol=1e-6)


def test_memory_budget_crops_every_network_and_stays_equal(standin, monkeypatch):  # noqa: F811
    model, variables = standin
    ldr = photo_like(330, 400, seed=5)
    full = onepass(model, variables, ldr)
    # A budget for 160×160 px calls at 100 bytes per pixel; no RSS in the accounting.
    monkeypatch.setattr(regions, "current_rss_bytes", lambda: 0)
    runner = networks.runner_for(model)
    monkeypatch.setattr(runner, "per_pixel", {"dequantization": 100.0, "hallucination": 100.0, "refinement": 100.0})
    budget = 100.0 * 160 * 160 + regions.HOST_BYTES_PER_PIXEL * 352 * 416
    r = run_regions(model, variables, ldr, memory_budget=budget, unet_context=24)
    assert r.stats["dequantization_calls"] > 1 and r.stats["refinement_calls"] > 1
    np.testing.assert_allclose(r.refined, full.refined, atol=1e-5)
    # A budget below the smallest crop: the smallest crops (context on both sides), still equal.
    monkeypatch.setattr(regions, "_WARNED", [])
    small = run_regions(model, variables, ldr, memory_budget=100.0 * 64 * 64 + regions.HOST_BYTES_PER_PIXEL * 352 * 416,
                    unet_context=24)
    assert regions._WARNED and small.stats["dequantization_calls"] > r.stats["dequantization_calls"]
    np.testing.assert_allclose(small.refined, full.refined, atol=1e-5)


def test_measured_context_of_the_stand_in(standin):  # noqa: F811
    model, variables = standin
    runner = networks.runner_for(model)
    m = receptive_field.measure("hallucination", lambda b: runner.hallucinate(variables, b), limit=64)
    # Stand-in Hal: 3×3 conv, 2× pool, 3×3 conv, up, 3×3 conv: nothing beyond ~8 px.
    assert m.bounded and 1 <= m.context <= 12, m.context
    assert max(m.profile[m.context:]) <= m.tolerance
    assert max(m.profile) > m.tolerance  # edges do matter close in


def test_measured_context_is_cached_per_weights(standin, tmp_path, monkeypatch):  # noqa: F811
    import jax

    model, variables = standin
    monkeypatch.setenv("HDRJAX_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(receptive_field, "_MEMO", {})
    runner = networks.runner_for(model)
    first = runner.context("hallucination", variables)
    assert (tmp_path / "receptive-field.json").exists()
    calls = []
    monkeypatch.setattr(receptive_field, "measure", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(receptive_field, "_MEMO", {})
    assert runner.context("hallucination", variables) == first and not calls  # read from disk
    other = jax.tree.map(lambda x: x * 1.01, variables)
    assert receptive_field.weights_fingerprint(other, "hal1") != receptive_field.weights_fingerprint(variables, "hal1")


def test_shipped_model_brings_its_receptive_fields(monkeypatch):
    """The default model's manifest holds its measured contexts: inference measures nothing."""
    from hdrjax.weights import pretrained

    model, variables, _, manifest = pretrained.load()
    stored = manifest["receptive_field"]
    assert set(stored) == {"dequantization", "hallucination", "refinement"}

    def fail(*a, **k):
        raise AssertionError("measured again")

    monkeypatch.setattr(receptive_field, "measure", fail)
    runner = networks.runner_for(model)
    for net, entry in stored.items():
        assert runner.context(net, variables) == entry["context"]
    # The Hallucination-Net reaches far (VGG-16, five poolings); the U-Nets do not.
    assert stored["hallucination"]["context"] > 4 * stored["dequantization"]["context"]
