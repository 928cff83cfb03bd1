"""Camera response curves: apply, project, invert, banks, DoRF/EMoR loaders, bases, family."""
import numpy as np
import pytest

import jax
import jax.numpy as jnp

from hdrjax.camera import crf
from hdrjax.camera import basis as basis_lib

N = crf.N_SAMPLES
GRID = np.linspace(0.0, 1.0, N)


def _nearest_rmse(targets, family):
    """RMSE of the nearest family member to each target curve."""
    t = np.asarray(targets, np.float64)
    f = np.asarray(family, np.float64)
    d2 = (t ** 2).sum(1)[:, None] - 2 * t @ f.T + (f ** 2).sum(1)[None]
    return np.sqrt(np.maximum(d2 / t.shape[1], 0)).min(axis=1)


# ------------------------------------------------------------------------ apply_curve


def test_apply_curve_matches_interp_and_ends():
    curve = jnp.asarray(GRID ** 0.45, jnp.float32)
    x = jnp.asarray([0.0, 0.1234, 0.5, 0.999, 1.0], jnp.float32)
    np.testing.assert_allclose(crf.apply_curve(x, curve), np.interp(x, GRID, curve), atol=1e-6)
    # x == 1 is every clipped pixel: it must give the last sample (not 0).
    assert float(crf.apply_curve(jnp.ones(()), curve)) == pytest.approx(1.0)
    # Outside [0, 1] the end samples (the reference clamps only the gather indices).
    out = crf.apply_curve(jnp.asarray([-0.5, 1.5]), curve)
    np.testing.assert_allclose(out, [0.0, 1.0], atol=1e-7)


def test_apply_curve_per_sample_gradients_in_x_and_curve():
    rng = np.random.default_rng(0)
    b = 3
    curves = np.sort(rng.uniform(0, 1, (b, N)), axis=1).astype(np.float32)
    x = rng.uniform(0.01, 0.99, (b, 4, 5, 3)).astype(np.float32)
    cotangent = rng.normal(size=x.shape).astype(np.float32)

    def f(x, c):
        return jnp.sum(crf.apply_curve(x, c) * cotangent)

    gx, gc = jax.grad(f, argnums=(0, 1))(jnp.asarray(x), jnp.asarray(curves))
    p = x * (N - 1)
    i0 = np.floor(p).astype(int)
    w1 = p - i0
    rows = np.arange(b)[:, None, None, None]
    slope = (curves[rows, i0 + 1] - curves[rows, i0]) * (N - 1)
    np.testing.assert_allclose(gx, cotangent * slope, rtol=2e-3, atol=2e-3)
    expected = np.zeros_like(curves)
    for k in range(b):
        np.add.at(expected[k], i0[k].ravel(), (cotangent[k] * (1 - w1[k])).ravel())
        np.add.at(expected[k], i0[k].ravel() + 1, (cotangent[k] * w1[k]).ravel())
    np.testing.assert_allclose(gc, expected, atol=1e-4)
    # Per-sample: curve k only receives gradient from sample k.
    assert np.count_nonzero(np.asarray(gc)) == np.count_nonzero(expected)


def test_apply_curve_vmaps_and_jits():
    curves = jnp.stack([jnp.asarray(GRID ** g, jnp.float32) for g in (0.5, 1.0, 2.0)])
    x = jnp.full((3, 2, 2, 3), 0.25)
    direct = jax.jit(crf.apply_curve)(x, curves)
    mapped = jax.vmap(lambda xi, ci: crf.apply_curve(xi, ci))(x, curves)
    np.testing.assert_allclose(direct, mapped, atol=1e-6)
    np.testing.assert_allclose(direct[:, 0, 0, 0], [0.5, 0.25, 0.0625], atol=1e-3)


# ----------------------------------------------------------------- monotone_projection


def test_monotone_projection_random_and_flat():
    raw = jnp.asarray(np.random.default_rng(0).normal(size=(16, N)).cumsum(-1) * 0.05, jnp.float32)
    g = np.asarray(crf.monotone_projection(raw))
    assert np.all(np.diff(g, axis=-1) >= -1e-6)
    np.testing.assert_allclose(g[:, 0], 0.0, atol=0)
    np.testing.assert_allclose(g[:, -1], 1.0, atol=1e-5)
    flat = np.asarray(crf.monotone_projection(jnp.full((2, N), 0.3)))
    assert np.all(np.isfinite(flat))
    np.testing.assert_allclose(flat, np.broadcast_to(GRID, flat.shape), atol=1e-5)
    # A curve that already is monotone with ends 0/1 is kept.
    np.testing.assert_allclose(crf.monotone_projection(jnp.asarray(GRID ** 2, jnp.float32)),
                               GRID ** 2, atol=1e-5)


def test_monotone_projection_clip_keeps_a_dipping_curve_and_shift_ramps_it():
    # A gamma-like inverse curve with a small dip near black, as an 11-component PCA
    # reconstruction of a real inverse CRF has: "clip" keeps the curve, "shift" adds a ramp.
    g = GRID ** 2.2
    raw = g.copy()
    raw[20:30] -= 0.004 * np.sin(np.linspace(0, np.pi, 10))
    clip = np.asarray(crf.monotone_projection(jnp.asarray(raw, jnp.float32), mode="clip"))
    shift = np.asarray(crf.monotone_projection(jnp.asarray(raw, jnp.float32), mode="shift"))
    assert np.all(np.diff(clip) >= -1e-7) and clip[0] == 0.0 and abs(clip[-1] - 1.0) < 1e-5
    assert np.sqrt(np.mean((clip - g) ** 2)) < 0.005
    assert np.sqrt(np.mean((shift - g) ** 2)) > 0.05  # the reference's projection ruins it
    with pytest.raises(ValueError, match="monotone projection mode"):
        crf.monotone_projection(jnp.asarray(raw), mode="sort")


def test_dorf_curves_survive_the_clip_projection_not_the_shift(shared_data):
    # The measured reason behind model.lin_monotone="clip" (docs in hdrjax.camera.crf).
    path = shared_data("crf", "dorf_201.npz")
    g = np.asarray(crf.load_bank(f"dorf:{path}", "all").inverse, np.float64)
    b = basis_lib.default_basis(11)
    rec = b.mean + ((g - b.mean) @ b.components) @ b.components.T
    rec = jnp.asarray(rec, jnp.float32)
    projected = {m: np.asarray(crf.monotone_projection(rec, mode=m)) for m in ("clip", "shift")}
    rmse = {m: float(np.sqrt(np.mean((p - g) ** 2))) for m, p in projected.items()}
    mean_answer = float(np.sqrt(np.mean((g.mean(0) - g) ** 2)))
    assert rmse["clip"] < 0.01 < mean_answer < rmse["shift"]


# ------------------------------------------------------------------------ invert_curve


def test_invert_curve_is_the_inverse():
    f = GRID ** (1 / 2.2)
    g = crf.invert_curve(f)
    assert g.dtype == np.float32 and g.shape == (N,)
    np.testing.assert_allclose(g, GRID ** 2.2, atol=2e-3)
    # f(g(b)) == b on the grid.
    np.testing.assert_allclose(np.interp(g, GRID, f), GRID, atol=2e-3)
    assert g[0] == 0.0 and g[-1] == 1.0


def test_invert_curve_flat_runs_are_deterministic():
    f = GRID.copy()
    f[400:600] = f[400]  # a flat run in the middle
    f[1000:] = 1.0  # saturates before the end
    f[:10] = 0.0  # dead zone at the start
    g = crf.invert_curve(f)
    # Exactly at the run's brightness: the smallest irradiance of the run (scipy interp1d).
    assert g[400] == pytest.approx(GRID[400])
    # Just above it: interpolation from the run's last sample.
    assert g[401] > GRID[599]
    assert g[0] == 0.0 and g[-1] == 1.0
    assert np.all(np.diff(g) >= 0)
    np.testing.assert_array_equal(crf.invert_curve(f), g)
    # Batched input gives the same rows.
    np.testing.assert_array_equal(crf.invert_curve(np.stack([f, GRID]))[0], g)


def test_invert_curve_matches_reference_interp1d_on_dorf(shared_data):
    scipy_interpolate = pytest.importorskip("scipy.interpolate")
    bank = crf.load_dorf(shared_data("crf", "dorf_201.npz"))
    for k in (0, 118, 124, 125, 130, 200):  # 118..130 have flat runs
        rf = np.asarray(bank.forward[k], np.float64)
        ref = scipy_interpolate.interp1d(rf, GRID)(GRID)  # dataset._inverse_rf
        np.testing.assert_allclose(bank.inverse[k], ref, atol=1e-6)


# ----------------------------------------------------------------------------- banks


def _write_dorf_txt(path, curves, names):
    lines = []
    for (name, colour), b in zip(names, curves):
        lines += [name, colour, "I =", "   ".join(f"{v:e}" for v in GRID), "B =",
                  "   ".join(f"{v:e}" for v in b)]
    path.write_text("\r\n".join(lines) + "\r\n")


def test_load_dorf_txt_synthetic(tmp_path):
    curves = np.stack([GRID ** 0.4, GRID ** 0.6, GRID ** 0.8])
    names = [("agfa-test", "Red"), ("kodak-test", "Green"), ("canon-test", "Blue")]
    path = tmp_path / "dorfCurves.txt"
    _write_dorf_txt(path, curves, names)
    assert len(path.read_text().splitlines()) == 18
    bank = crf.load_dorf(path)
    assert len(bank) == 3
    assert bank.names == ("agfa-test (Red)", "kodak-test (Green)", "canon-test (Blue)")
    np.testing.assert_allclose(bank.forward, curves, atol=1e-6)
    np.testing.assert_allclose(bank.inverse[0], GRID ** 2.5, atol=3e-3)
    assert bank.forward.dtype == np.float32 and bank.inverse.shape == (3, N)
    # Same curves through the .npz loader.
    npz = tmp_path / "dorf.npz"
    np.savez(npz, I=np.tile(GRID, (3, 1)).astype(np.float32), B=curves.astype(np.float32))
    np.testing.assert_allclose(crf.load_dorf(npz).forward, bank.forward, atol=1e-6)


@pytest.mark.parametrize("content, problem", [
    ("name\nRed\nI =\n0 0.5 1\nB =\n0 0.5 1\nextra\n", "not a multiple of 6"),
    ("name\nRed\nX =\n0 0.5 1\nB =\n0 0.5 1\n", "'I ='"),
    ("name\nRed\nI =\n0 0.5 1\nB =\n0 zero 1\n", "not numbers"),
    ("name\nRed\nI =\n0 0.5 1\nB =\n0 0.7 0.2\n", "not non-decreasing"),
    ("name\nRed\nI =\n0 0.5 1\nB =\n0 1\n", "2 B values"),
    ("", "empty"),
])
def test_load_dorf_txt_errors_name_the_file(tmp_path, content, problem):
    path = tmp_path / "bad_dorf.txt"
    path.write_text(content)
    with pytest.raises(crf.CRFFileError, match=problem) as info:
        crf.load_dorf(path)
    assert info.value.path == str(path)
    assert str(info.value).startswith(str(path))


def test_load_bank_errors(tmp_path):
    with pytest.raises(crf.CRFFileError, match="no such file"):
        crf.load_bank(f"dorf:{tmp_path / 'missing.txt'}")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(crf.CRFFileError, match="bad.npz"):
        crf.load_bank(f"dorf:{bad}")
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, X=np.zeros((3, N)))
    with pytest.raises(crf.CRFFileError, match="no array 'B'"):
        crf.load_dorf(wrong)
    with pytest.raises(crf.CRFError, match="unknown CRF bank spec"):
        crf.load_bank("emor")
    with pytest.raises(crf.CRFError, match="unknown CRF split"):
        crf.load_bank("family", "validation")


def test_dorf_split_matches_reference_file(shared_data):
    path = shared_data("singlehdr", "dorf_split.txt")
    rows = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            key, *vals = line.split()
            rows[key] = np.array([int(v) for v in vals])
    train, test = crf.dorf_split()
    np.testing.assert_array_equal(train, rows["train"])
    np.testing.assert_array_equal(test, rows["test"])
    # Shuffling the indices is the same as the reference's in-place shuffle of the curve rows.
    arr = np.arange(201 * 3, dtype=np.float32).reshape(201, 3)
    np.random.RandomState(730).shuffle(arr)
    np.testing.assert_array_equal(arr[:, 0] / 3, np.concatenate([train, test]))


def test_load_bank_dorf_npz_splits(shared_data):
    path = shared_data("crf", "dorf_201.npz")
    full = crf.load_bank(f"dorf:{path}", "all")
    train = crf.load_bank(f"dorf:{path}", "train")
    test = crf.load_bank(f"dorf:{path}", "test")
    assert (len(full), len(train), len(test)) == (201, 191, 10)
    np.testing.assert_array_equal(test.forward, full.forward[[108, 180, 12, 6, 30, 118, 38, 11, 16, 4]])
    assert test.names[0] == "dorf-108"
    ref = np.load(path)["B"]
    np.testing.assert_allclose(full.forward, ref, atol=0)
    assert np.all(np.diff(full.inverse, axis=1) >= 0)


def test_bank_is_a_pytree():
    bank = crf.load_bank("family", "test")
    leaves, treedef = jax.tree.flatten(bank)
    assert len(leaves) == 2
    back = jax.tree.unflatten(treedef, leaves)
    assert back.names == bank.names
    doubled = jax.jit(lambda b: jax.tree.map(lambda a: a * 2, b))(bank)
    np.testing.assert_allclose(doubled.forward, 2 * bank.forward)
    assert bank.index(bank.names[3]) == 3
    with pytest.raises(crf.CRFError):
        bank.index("no-such-curve")


# ------------------------------------------------------------------ parametric family


def test_parametric_family_is_valid_and_split():
    bank = crf.parametric_bank()
    assert len(bank) == 448 and len(set(bank.names)) == 448
    f = np.asarray(bank.forward)
    assert np.all(f[:, 0] == 0) and np.all(f[:, -1] == 1)
    assert np.all(np.diff(f, axis=1) >= 0)
    assert np.all(np.diff(bank.inverse, axis=1) >= 0)
    for name in ("linear", "gamma-2.2", "srgb", "rec709"):
        assert name in bank.names
    np.testing.assert_allclose(bank.forward[bank.index("gamma-2.2")], GRID ** (1 / 2.2), atol=1e-6)
    train, test = crf.family_split()
    assert len(train) + len(test) == len(bank) and not set(train) & set(test)
    assert len(crf.load_bank("family", "test")) == len(test) == 45
    np.testing.assert_array_equal(crf.family_split()[1], test)  # deterministic


def test_parametric_family_spans_dorf(shared_data):
    dorf = crf.load_dorf(shared_data("crf", "dorf_201.npz"))
    family = crf.parametric_bank()
    err = _nearest_rmse(dorf.forward, family.forward)
    # Measured 0.0117 mean, 0.034 worst (448 members); a single gamma law gives 0.047.
    assert err.mean() < 0.015
    assert err.max() < 0.05
    train_err = _nearest_rmse(dorf.forward, family.forward[crf.family_split()[0]])
    assert train_err.mean() < 0.015


# ------------------------------------------------------------------ built-in camera bank


def _spread(inverse):
    g = np.asarray(inverse, np.float64)
    return float(np.sqrt(((g - g.mean(0)) ** 2).mean(1)).mean())


def test_camera_bank_is_valid_deterministic_and_spreads_like_cameras():
    bank = crf.camera_bank()
    assert len(bank) == crf.CAMERA_BANK_SIZE == len(set(bank.names))
    f, g = np.asarray(bank.forward), np.asarray(bank.inverse)
    assert np.all(f[:, 0] == 0) and np.all(f[:, -1] == 1) and np.all(np.diff(f, axis=1) >= 0)
    assert np.all(np.diff(g, axis=1) >= 0)
    # DoRF's training curves spread 0.091 RMSE around their mean, the parametric family 0.20.
    assert 0.07 < _spread(g) < 0.12
    assert _spread(crf.parametric_bank().inverse) > 0.18
    assert len(crf.load_bank("camera", "test")) + len(crf.load_bank("camera", "train")) == len(bank)
    crf.camera_bank.cache_clear()
    np.testing.assert_array_equal(crf.camera_bank().inverse, g)


def test_prior_fit_and_sampling_reproduce_a_bank():
    # Curves g = x^p with p spread around 0.45: the model's draws have their mean and spread.
    rng = np.random.default_rng(1)
    bank = crf.make_bank(GRID[None] ** (1 / rng.uniform(0.3, 0.6, 300))[:, None])
    prior = crf.fit_prior(bank, k=3)
    assert prior["explained_variance"] > 0.99
    draws = crf.sample_prior(prior, 2000, seed=0)
    assert np.all(np.diff(draws, axis=1) >= 0) and np.all(draws[:, 0] == 0) and np.all(draws[:, -1] == 1)
    np.testing.assert_allclose(draws.mean(0), np.asarray(bank.inverse).mean(0), atol=0.01)
    assert _spread(draws) == pytest.approx(_spread(bank.inverse), rel=0.1)
    with pytest.raises(crf.CRFError):
        crf.fit_prior(bank, k=300)


def test_camera_bank_matches_dorf(shared_data):
    dorf = crf.load_bank(f"dorf:{shared_data('crf', 'dorf_201.npz')}", "train")
    assert _spread(crf.camera_bank().inverse) == pytest.approx(_spread(dorf.inverse), rel=0.1)
    mean_gap = np.sqrt(np.mean((np.asarray(crf.camera_bank().inverse).mean(0)
                                - np.asarray(dorf.inverse).mean(0)) ** 2))
    assert mean_gap < 0.01


def test_default_basis_stays_fitted_to_the_parametric_family():
    # The shipped Linearization-Net's coefficients are in this basis: a new default bank must not move it.
    expected = basis_lib.fit_basis(crf.load_bank("parametric", "train"), 11)
    np.testing.assert_array_equal(basis_lib.default_basis(11).components, expected.components)


# -------------------------------------------------------------------------------- bases


@pytest.mark.parametrize("name", ["invemor.txt", "invemor.npz"])
def test_load_invemor(name, shared_data):
    basis = basis_lib.load_invemor(shared_data("singlehdr", name))
    assert basis.mean.shape == (N,) and basis.components.shape == (N, 11)
    assert basis.mean[0] == 0 and basis.mean[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(basis.components[[0, -1]], 0.0, atol=1e-6)
    gram = basis.components.T.astype(np.float64) @ basis.components
    np.testing.assert_allclose(gram, np.eye(11), atol=1e-4)
    assert basis_lib.load_invemor(shared_data("singlehdr", name), k=None).k == 25
    w = jnp.zeros((2, 11)).at[:, 0].set(1.0)
    np.testing.assert_allclose(basis.curve(w)[0], basis.mean + basis.components[:, 0], atol=1e-6)


def test_load_emor_txt_and_npz_agree(shared_data):
    a = basis_lib.load_emor(shared_data("singlehdr", "emor.txt"))
    b = basis_lib.load_emor(shared_data("singlehdr", "emor.npz"))
    np.testing.assert_allclose(a.components, b.components, atol=1e-6)
    np.testing.assert_allclose(a.mean, b.mean, atol=1e-6)
    assert a.k == 25


def test_basis_file_errors(tmp_path, shared_data):
    emor = shared_data("singlehdr", "emor.txt")
    with pytest.raises(crf.CRFFileError, match="is this an invemor.txt file"):
        basis_lib.load_invemor(emor)  # an EMoR file is not an invEMoR file
    cut = tmp_path / "invemor.txt"
    cut.write_text("\n".join(shared_data("singlehdr", "invemor.txt").read_text().splitlines()[:400]))
    with pytest.raises(crf.CRFFileError, match="values, expected 1024"):
        basis_lib.load_invemor(cut)
    with pytest.raises(crf.CRFFileError, match="asked for 30"):
        basis_lib.load_invemor(shared_data("singlehdr", "invemor.npz"), k=30)
    with pytest.raises(crf.CRFFileError, match="no such file"):
        basis_lib.load_invemor(tmp_path / "none.txt")


def test_fit_basis_on_dorf_reproduces_invemor(shared_data):
    dorf = crf.load_dorf(shared_data("crf", "dorf_201.npz"))
    hinv = basis_lib.load_invemor(shared_data("singlehdr", "invemor.npz"), k=None).components
    fit = basis_lib.fit_basis(dorf, 5)
    comp = np.asarray(fit.components, np.float64)
    cos = [abs(comp[:, i] @ hinv[:, i]) / np.linalg.norm(comp[:, i]) / np.linalg.norm(hinv[:, i])
           for i in range(4)]
    # Measured 0.9998, 0.9996, 0.9998, 0.9992.
    assert min(cos[:3]) > 0.99 and cos[3] > 0.95
    assert np.all(comp[[0, -1]] == 0)
    np.testing.assert_allclose(comp.T @ comp, np.eye(5), atol=1e-5)


def test_default_basis_needs_no_file_and_represents_dorf(shared_data):
    basis = basis_lib.default_basis()
    assert basis.k == 11 and basis.mean.shape == (N,)
    assert np.all(basis.components[[0, -1]] == 0)
    assert basis_lib.default_basis() is basis  # cached
    dorf = shared_data("crf", "dorf_201.npz")
    g = np.asarray(crf.load_dorf(dorf).inverse, np.float64)
    w = (g - basis.mean) @ basis.components
    rec = np.asarray(basis.curve(w), np.float64)
    # Inverse DoRF curves in the family's 11-component span: measured RMSE 0.0009
    # (invEMoR's own 11 components: 0.0005).
    assert np.sqrt(((rec - g) ** 2).mean(axis=1)).mean() < 0.003
    with pytest.raises(basis_lib.BasisError):
        basis_lib.fit_basis(crf.load_bank("family", "test"), 45)


# ------------------------------------------------------------------------ dark_end_prior


def test_dark_end_shape_is_the_geometric_mean_of_the_camera_prior_fit():
    shape = crf.dark_end_shape()
    assert shape.shape == (N,) and shape.dtype == np.float32
    assert shape[0] == 0.0 and shape[-1] == 1.0 and np.all(np.diff(shape) >= 0)
    # Below the mean curve in the dark: the geometric mean of curves that differ by a factor of
    # 20 there lies below their arithmetic mean (docs/training.md).
    with np.load(crf.CAMERA_PRIOR_FILE) as f:
        assert np.all(shape[1:64] < f["mean"][1:64])


def test_dark_end_prior_follows_the_shape_below_the_knot_and_keeps_the_curve_above():
    knot = 128
    shape = jnp.asarray(GRID ** 1.8, jnp.float32)
    # A PCA curve gone wrong near black: clipped to a run of zeros, and one far too steep.
    flat = np.maximum(GRID - 0.02, 0) / 0.98
    steep = GRID ** 0.3
    curves = jnp.asarray(np.stack([flat, steep]), jnp.float32)
    out = np.asarray(crf.dark_end_prior(curves, shape, knot))
    np.testing.assert_array_equal(out[:, knot:], np.asarray(curves)[:, knot:])
    for row, c in zip(out, np.asarray(curves)):
        np.testing.assert_allclose(row[:knot], np.asarray(shape)[:knot] * c[knot] / float(shape[knot]), rtol=1e-5)
        assert row[0] == 0.0 and np.all(np.diff(row) >= 0)
    assert np.all(out[0, 1:knot] > 0)  # no black run left
    # power 1: the level goes from the curve's at the knot to the prior's own at black.
    drawn = np.asarray(crf.dark_end_prior(curves, shape, knot, power=1.0))
    np.testing.assert_allclose(drawn[:, knot - 1] / out[:, knot - 1], 1.0, rtol=0.05)
    np.testing.assert_allclose(drawn[:, 1] / np.asarray(shape)[1], 1.0, rtol=0.1)
    # Differentiable in the curve, finite even for a curve flat at 0 up to the knot.
    zero = jnp.zeros((1, N)).at[0, knot:].set(jnp.linspace(0.1, 1.0, N - knot))
    grad = jax.grad(lambda c: jnp.sum(crf.dark_end_prior(c, shape, knot, power=1.0)))(zero)
    assert np.all(np.isfinite(np.asarray(grad)))
    with pytest.raises(ValueError, match="knot"):
        crf.dark_end_prior(curves, shape, 0)
