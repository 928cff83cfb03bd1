"""Camera response curves: sampling, inversion, application, monotone projection, banks.

Every curve is sampled on N_SAMPLES = 1024 equally spaced points of [0, 1] (the DoRF and
EMoR convention).  A forward curve maps linear irradiance to brightness; its inverse maps
brightness back to irradiance.

Banks of curves (`CRFBank`) come from Columbia's DoRF database (`dorfCurves.txt` or an `.npz`
with arrays `I`, `B`), from the built-in camera bank (`camera_bank`: curves drawn from a
Gaussian model of DoRF's training curves that ships with the package, so they spread as real
cameras' do) or from the built-in parametric family (`parametric_bank`: standards, power laws,
film and S-curves; wider than real cameras).  PCA bases of curves: `hdrjax.camera.basis`.
"""
from __future__ import annotations

import functools
import os
import pathlib
import re

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from hdrjax.errors import HdrjaxError

N_SAMPLES = 1024

# The reference holds out the last 10 rows of DoRF after a RandomState(730) shuffle.
DORF_SPLIT_SEED = 730
DORF_TEST_SIZE = 10
# Held-out members of the parametric family: a fixed shuffle, the last 10 % are test curves.
FAMILY_SPLIT_SEED = 0
FAMILY_TEST_FRACTION = 0.1

SPLITS = ("train", "test", "all")
# Specs of the banks load_bank knows, for messages.
BANK_SPECS = "'camera', 'parametric' or 'dorf:PATH'"

# The built-in camera bank: CAMERA_BANK_SIZE curves drawn with CAMERA_BANK_SEED from the model
# in CAMERA_PRIOR_FILE (made by experiments/default_model/fit_camera_crfs.py from DoRF's 191 training curves;
# the 10 test curves are not used).  Split like the parametric family.
CAMERA_PRIOR_FILE = pathlib.Path(__file__).with_name("camera_crf_prior.npz")
CAMERA_BANK_SIZE = 500
# eps of the geometric mean curve stored beside the camera prior (dark_end_shape). As a fixed
# curve (experiments/results/curve-averaging.json) 1e-4 is 0.01 dB below the best eps on the
# training files (3e-4, 1e-3) and the best on the held-out ones; only the dark end uses it.
DARK_END_EPS = 1e-4
CAMERA_BANK_SEED = 0


class CRFError(HdrjaxError):
    """A CRF bank or basis cannot be built from what the user gave (spec, split, size)."""


class CRFFileError(CRFError):
    """A CRF / basis file is missing or malformed; `str(e) == f"{path}: {problem}"`."""

    def __init__(self, path, problem):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


# --------------------------------------------------------------------------------------
# Curve primitives (jnp, used inside jit)
# --------------------------------------------------------------------------------------


def apply_curve(x: jax.Array, curve: jax.Array) -> jax.Array:
    """Piecewise-linear lookup of x in a 1024-sample curve, as the reference's `apply_rf`.

    x: f32[B, ...] in [0, 1]; curve: f32[B, 1024] (one curve per sample) or f32[1024]
    (shared).  Differentiable in both.  As in the reference the weights come from the
    unclamped floor and only the gather indices are clamped, so x = 1 gives curve[-1] and
    values outside [0, 1] give the end samples (with zero gradient in x).
    """
    n = curve.shape[-1]
    p = x * (n - 1)
    f0 = jnp.floor(p)
    # Weights from the unclamped neighbours (they always sum to 1); clamping them as well
    # would zero the output at x == 1, the value of every clipped pixel.
    w1 = p - f0
    w0 = 1.0 - w1
    i0 = jnp.clip(f0, 0, n - 1).astype(jnp.int32)
    i1 = jnp.clip(f0 + 1, 0, n - 1).astype(jnp.int32)
    if curve.ndim == 1:
        c0, c1 = curve[i0], curve[i1]
    else:
        flat = curve.reshape(curve.shape[0], n)
        b = x.shape[0]
        take = jax.vmap(lambda c, i: c[i])
        c0 = take(flat, i0.reshape(b, -1)).reshape(x.shape)
        c1 = take(flat, i1.reshape(b, -1)).reshape(x.shape)
    return w0 * c0 + w1 * c1


MONOTONE_MODES = ("shift", "clip")


def monotone_projection(raw: jax.Array, eps: float = 1e-8, mode: str = "shift") -> jax.Array:
    """Make a raw curve a valid inverse CRF: steps >= 0, normalise, cumulative sum.

    raw: f32[..., N] -> f32[..., N], non-decreasing, first sample 0, last sample 1.
    `mode="shift"` is the reference's `_increase`: every step is raised by the most negative
    one.  One small dip anywhere (PCA curves dip near black, where inverse CRFs are flat)
    then adds a linear ramp to the whole curve: the DoRF curves, reconstructed with 11
    components to 0.002 RMSE, come out at 0.123 RMSE after "shift" — worse than answering
    DoRF's mean curve (0.086) — so a network trained through it cannot beat the mean curve.
    `mode="clip"` (ours, docs/training.md) sets negative steps to 0 and leaves the rest:
    0.004 RMSE on the same curves.  `eps` keeps a perfectly flat curve from dividing by
    zero (the reference gives NaN there); a flat input then maps to the identity ramp.
    """
    if mode not in MONOTONE_MODES:
        raise ValueError(f"monotone projection mode must be one of {MONOTONE_MODES}, got {mode!r}")
    d = raw[..., 1:] - raw[..., :-1]
    if mode == "shift":
        d = d + jnp.maximum(0.0, -jnp.min(d, axis=-1, keepdims=True))
    else:
        d = jnp.maximum(d, 0.0)
    d = d + eps
    d = d / jnp.sum(d, axis=-1, keepdims=True)
    zero = jnp.zeros(d.shape[:-1] + (1,), d.dtype)
    return jnp.concatenate([zero, jnp.cumsum(d, axis=-1)], axis=-1)


# --------------------------------------------------------------------------------------
# Inversion (numpy, for banks)
# --------------------------------------------------------------------------------------


def _invert_one(c: np.ndarray) -> np.ndarray:
    n = c.shape[0]
    grid = np.linspace(0.0, 1.0, n)
    inv = np.interp(grid, c, grid)
    # Flat runs: np.interp returns the *last* irradiance of a run at the run's exact
    # brightness; the reference's scipy interp1d returns the *first* (smallest) one.  Take
    # the first explicitly so the result is defined by us, not by a search implementation.
    idx = np.searchsorted(c, grid, side="left")
    hit = (idx < n) & (c[np.minimum(idx, n - 1)] == grid)
    inv[hit] = grid[idx[hit]]
    return inv


def invert_curve(curve) -> np.ndarray:
    """Inverse of forward curve(s) f[..., 1024] on the brightness grid, as the reference.

    Endpoints of the forward curve are forced to 0 and 1 (as `dataset._inverse_rf`), the
    inverse is the linear interpolation of (f, linspace) at linspace, and its endpoints are
    forced to 0 and 1 as well (the reference leaves g(1) at the first irradiance where f = 1,
    which only differs for curves that saturate before 1: none in DoRF).  A flat run of f maps
    its brightness to the run's smallest irradiance, as scipy's `interp1d` did.  Slightly
    decreasing input is made non-decreasing with a running maximum first.
    """
    f = np.array(curve, dtype=np.float64, copy=True)
    if f.shape[-1] < 2:
        raise ValueError(f"a curve needs at least 2 samples, got shape {f.shape}")
    f[..., 0] = 0.0
    f[..., -1] = 1.0
    f = np.maximum.accumulate(np.clip(f, 0.0, 1.0), axis=-1)
    flat = f.reshape(-1, f.shape[-1])
    inv = np.stack([_invert_one(row) for row in flat]).reshape(f.shape)
    inv[..., 0] = 0.0
    inv[..., -1] = 1.0
    return inv.astype(np.float32)


# --------------------------------------------------------------------------------------
# Banks
# --------------------------------------------------------------------------------------


@flax.struct.dataclass
class CRFBank:
    """N camera response curves: forward f32[N, 1024], inverse f32[N, 1024], static names."""

    forward: np.ndarray
    inverse: np.ndarray
    names: tuple = flax.struct.field(pytree_node=False, default=())

    def __len__(self):
        return int(self.forward.shape[0])

    def take(self, indices) -> "CRFBank":
        """The bank restricted to `indices` (in that order)."""
        idx = np.asarray(indices, dtype=np.int64)
        return CRFBank(
            forward=readonly(np.asarray(self.forward)[idx]),
            inverse=readonly(np.asarray(self.inverse)[idx]),
            names=tuple(self.names[i] for i in idx),
        )

    def index(self, name: str) -> int:
        """Row of the curve called `name`."""
        try:
            return self.names.index(name)
        except ValueError:
            raise CRFError(f"no CRF named {name!r} in this bank ({len(self)} curves)") from None


def readonly(a):
    a = np.ascontiguousarray(a, dtype=np.float32)
    a.setflags(write=False)
    return a


def make_bank(forward, names=None) -> CRFBank:
    """A bank from forward curves f[N, 1024] (endpoints forced to 0/1; inverses computed)."""
    f = np.array(forward, dtype=np.float64, copy=True)
    if f.ndim != 2 or f.shape[1] != N_SAMPLES:
        raise CRFError(f"forward curves must have shape [N, {N_SAMPLES}], got {f.shape}")
    f[:, 0] = 0.0
    f[:, -1] = 1.0
    f = np.maximum.accumulate(np.clip(f, 0.0, 1.0), axis=-1)
    if names is None:
        names = tuple(f"crf-{i:03d}" for i in range(len(f)))
    names = tuple(str(n) for n in names)
    if len(names) != len(f):
        raise CRFError(f"{len(names)} names for {len(f)} curves")
    return CRFBank(forward=readonly(f), inverse=readonly(invert_curve(f)), names=names)


def _to_uniform_grid(path, irr, bri, what):
    """Resample brightness curves given at irradiances `irr` onto linspace(0, 1, 1024)."""
    grid = np.linspace(0.0, 1.0, N_SAMPLES)
    if irr.shape == bri.shape and irr.shape[-1] == N_SAMPLES and np.allclose(irr, grid, atol=1e-6):
        return bri
    out = np.empty((bri.shape[0], N_SAMPLES))
    for k in range(bri.shape[0]):
        x = irr[k] if irr.ndim == 2 else irr
        if np.any(np.diff(x) <= 0):
            raise CRFFileError(path, f"{what} {k}: irradiance samples are not increasing")
        out[k] = np.interp(grid, x / x[-1], bri[k])
    return out


def _check_curves(path, bri, what="curve"):
    if not np.all(np.isfinite(bri)):
        k = int(np.argwhere(~np.isfinite(bri))[0, 0])
        raise CRFFileError(path, f"{what} {k} has non-finite values")
    steps = np.diff(bri, axis=-1)
    bad = np.where(steps.min(axis=-1) < -1e-4)[0]
    if bad.size:
        raise CRFFileError(path, f"{what} {int(bad[0])} is not non-decreasing "
                                 f"({bad.size} curve(s) decrease)")


def _parse_values(path, line, lineno, what):
    try:
        values = np.array([float(t) for t in line.split()], dtype=np.float64)
    except ValueError:
        raise CRFFileError(path, f"line {lineno}: {what} values are not numbers") from None
    if values.size < 2:
        raise CRFFileError(path, f"line {lineno}: expected {what} values, got {values.size}")
    return values


def _load_dorf_txt(path):
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as fh:
            lines = [ln.strip() for ln in fh.read().splitlines()]
    except OSError as e:
        raise CRFFileError(path, f"cannot read ({e.strerror or e})") from None
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise CRFFileError(path, "empty file")
    if len(lines) % 6:
        raise CRFFileError(path, f"{len(lines)} lines is not a multiple of 6 "
                                 "(DoRF records are: name, colour, 'I =', values, 'B =', values)")
    names, irr, bri = [], [], []
    for r in range(len(lines) // 6):
        rec = lines[6 * r: 6 * r + 6]
        base = 6 * r + 1
        if not re.fullmatch(r"I\s*=", rec[2]) or not re.fullmatch(r"B\s*=", rec[4]):
            raise CRFFileError(path, f"record {r} (line {base}): expected 'I =' and 'B =' "
                                     f"on lines {base + 2} and {base + 4}")
        i_vals = _parse_values(path, rec[3], base + 3, "I")
        b_vals = _parse_values(path, rec[5], base + 5, "B")
        if i_vals.size != b_vals.size:
            raise CRFFileError(path, f"record {r}: {i_vals.size} I values but {b_vals.size} B values")
        if r and i_vals.size != irr[0].size:
            raise CRFFileError(path, f"record {r}: {i_vals.size} samples, record 0 has {irr[0].size}")
        names.append(f"{rec[0]} ({rec[1]})" if rec[1] else rec[0])
        irr.append(i_vals)
        bri.append(b_vals)
    return np.stack(irr), np.stack(bri), names


def _load_dorf_npz(path):
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            if "B" not in keys:
                raise CRFFileError(path, f"no array 'B' (brightness curves); has {sorted(keys)}")
            bri = np.asarray(z["B"], dtype=np.float64)
            irr = np.asarray(z["I"], dtype=np.float64) if "I" in keys else None
            names = [str(s) for s in z["names"]] if "names" in keys else None
    except CRFFileError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise CRFFileError(path, f"not a readable .npz ({e})") from None
    if bri.ndim != 2 or bri.shape[1] < 2:
        raise CRFFileError(path, f"'B' must have shape [N, samples], got {bri.shape}")
    if irr is None:
        irr = np.linspace(0.0, 1.0, bri.shape[1])
    elif irr.shape not in (bri.shape, (bri.shape[1],)):
        raise CRFFileError(path, f"'I' has shape {irr.shape}, 'B' has {bri.shape}")
    if names is not None and len(names) != len(bri):
        raise CRFFileError(path, f"{len(names)} names for {len(bri)} curves")
    return irr, bri, names


def load_dorf(path) -> CRFBank:
    """DoRF curves from Columbia's `dorfCurves.txt` or an `.npz` with `B` (and `I`, `names`)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CRFFileError(path, "no such file")
    if path.lower().endswith(".npz"):
        irr, bri, names = _load_dorf_npz(path)
    else:
        irr, bri, names = _load_dorf_txt(path)
    if not np.all(np.isfinite(irr)):
        raise CRFFileError(path, "irradiance samples are not finite")
    bri = _to_uniform_grid(path, irr, bri, "curve")
    _check_curves(path, bri)
    if names is None:
        names = [f"dorf-{i:03d}" for i in range(len(bri))]
    return make_bank(bri, names)


def dorf_split(n: int = 201):
    """The reference's CRF split: RandomState(730) shuffle of n rows, last 10 are test."""
    if n <= DORF_TEST_SIZE:
        raise CRFError(f"a DoRF split needs more than {DORF_TEST_SIZE} curves, got {n}")
    # A legacy RandomState shuffle draws the same swaps for any array of n rows, so shuffling
    # the row indices reproduces the reference's in-place shuffle of the curve array.
    perm = np.arange(n)
    np.random.RandomState(DORF_SPLIT_SEED).shuffle(perm)
    return perm[:-DORF_TEST_SIZE], perm[-DORF_TEST_SIZE:]


# --------------------------------------------------------------------------------------
# Built-in parametric family
# --------------------------------------------------------------------------------------


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _family_curves():
    """(names, curves f64[M, 1024]) of the built-in family; parameter ranges span DoRF."""
    x = np.linspace(0.0, 1.0, N_SAMPLES)
    names, curves = [], []

    def add(name, c):
        names.append(name)
        curves.append(c)

    def toe_power(p, o):
        # Linear toe tangent to the offset power law (1 + o) x^p - o.
        x0 = (o / ((1 + o) * (1 - p))) ** (1 / p)
        s = (1 + o) * p * x0 ** (p - 1)
        return np.where(x < x0, s * x, (1 + o) * x ** p - o)

    # Named standards, handy on the command line (`--crf family:srgb`).
    add("linear", x.copy())
    add("gamma-2.2", x ** (1 / 2.2))
    add("srgb", toe_power(1 / 2.4, 0.055))
    add("rec709", toe_power(0.45, 0.099))
    # Power laws x^(1/g): the classic display-gamma cameras and near-linear sensors.
    for g in np.round(np.geomspace(0.5, 5.0, 24), 2):
        add(f"gamma-g{g:.2f}", x ** (1.0 / g))
    # sRGB / Rec.709-like: linear toe + offset power law.
    for p in np.linspace(0.3, 0.8, 8):
        for o in (0.01, 0.03, 0.06, 0.1, 0.2):
            add(f"srgb-p{p:.3f}-o{o:.2f}", toe_power(p, o))
    # Kumaraswamy CDF 1 - (1 - x^a)^b: polynomial for integer b; concave, convex and S shapes.
    for a in np.geomspace(0.25, 3.0, 14):
        for b in np.geomspace(0.4, 6.0, 10):
            add(f"kuma-a{a:.3f}-b{b:.3f}", 1 - (1 - x ** a) ** b)
    # Film-like log-logistic (Hill) curves x^k (1 + c^k) / (x^k + c^k): toe and shoulder.
    for k in np.geomspace(0.3, 4.0, 12):
        for c in np.geomspace(0.03, 2.0, 12):
            add(f"film-k{k:.3f}-c{c:.3f}", x ** k * (1 + c ** k) / (x ** k + c ** k))
    # Logistic S-curves applied after a power law (contrasty consumer/video looks).
    for a in np.geomspace(0.25, 1.5, 6):
        for k in (2.0, 4.0, 7.0, 10.0):
            for c in np.linspace(0.2, 0.8, 4):
                y = x ** a
                lo, hi = _sigmoid(-k * c), _sigmoid(k * (1 - c))
                add(f"scurve-a{a:.3f}-k{k:.0f}-c{c:.2f}", (_sigmoid(k * (y - c)) - lo) / (hi - lo))
    return tuple(names), np.stack(curves)


@functools.lru_cache(maxsize=1)
def parametric_bank() -> CRFBank:
    """The built-in family of 448 parametric CRFs (gamma, sRGB-like, polynomial, film, S)."""
    names, curves = _family_curves()
    return make_bank(curves, names)


# --------------------------------------------------------------------------------------
# Built-in camera bank: a Gaussian model of measured camera responses
# --------------------------------------------------------------------------------------


def fit_prior(bank: CRFBank, k: int = 6) -> dict:
    """A Gaussian model of the bank's inverse curves: mean + k principal directions + the
    standard deviation of each coefficient (f64 arrays `mean`, `components` [k, 1024], `std`)."""
    g = np.asarray(bank.inverse, dtype=np.float64)
    if not 1 <= k < len(g):
        raise CRFError(f"cannot fit {k} directions to {len(g)} curves")
    mean = g.mean(axis=0)
    _, s, vt = np.linalg.svd(g - mean, full_matrices=False)
    explained = float((s[:k] ** 2).sum() / (s ** 2).sum())
    return {"mean": mean, "components": vt[:k], "std": s[:k] / np.sqrt(len(g) - 1),
            "explained_variance": np.float64(explained), "num_curves": np.int64(len(g)),
            # The shape the dark end of an estimated curve falls back on (dark_end_prior).
            "geometric_mean": geometric_mean_curve(g, DARK_END_EPS).astype(np.float64)}


def geometric_mean_curve(curves, eps: float) -> np.ndarray:
    """exp(mean log(g + eps)) - eps over inverse CRFs f[N, 1024], ends pinned at 0 and 1: f32[1024].

    The mean a relative-error loss converges to (docs/training.md, "The curve term in log space").
    """
    g = np.exp(np.mean(np.log(np.asarray(curves, np.float64) + eps), axis=0)) - eps
    g = np.clip(g, 0.0, 1.0)
    g[0], g[-1] = 0.0, 1.0
    return g.astype(np.float32)


def sample_prior(prior, n: int, seed: int) -> np.ndarray:
    """n inverse curves f64[n, 1024] drawn from a `fit_prior` model: Gaussian coefficients,
    then made valid inverse CRFs (ends 0 and 1, non-decreasing) by a running maximum."""
    rng = np.random.default_rng(seed)
    coeffs = rng.standard_normal((n, len(prior["std"]))) * prior["std"]
    g = prior["mean"] + coeffs @ prior["components"]
    g[:, 0], g[:, -1] = 0.0, 1.0
    return np.maximum.accumulate(np.clip(g, 0.0, 1.0), axis=-1)


@functools.lru_cache(maxsize=1)
def dark_end_shape() -> np.ndarray:
    """The geometric mean f32[1024] of DoRF's 191 training curves (CAMERA_PRIOR_FILE, no DoRF file)."""
    with np.load(CAMERA_PRIOR_FILE) as f:
        if "geometric_mean" not in f:
            raise CRFFileError(CAMERA_PRIOR_FILE, "no 'geometric_mean' curve (rewrite it with "
                               "python -m experiments.default_model.fit_camera_crfs)")
        return np.asarray(f["geometric_mean"], np.float32)


def code_sample(code: int, samples: int = N_SAMPLES) -> int:
    """The index of the curve sample nearest the 8-bit code (samples on linspace(0, 1))."""
    return int(round(code / 255 * (samples - 1)))


def dark_end_prior(curve: jax.Array, shape, knot: int, power: float = 0.0) -> jax.Array:
    """Inverse CRFs f32[..., N] whose samples below `knot` follow a prior `shape` f32[N].

    Below the knot, g(x) = shape(x) · r^w(x), with r = g(x_knot) / shape(x_knot) the curve's
    level against the prior's at the knot and w(x) = (x / x_knot)^power: power 0 scales the
    prior's shape to meet the curve at the knot; power > 0 also moves the level towards the
    prior's own towards black. Continuous at the knot, non-decreasing, 0 at 0 (a shape with
    shape[0] = 0), differentiable in `curve`. Why: docs/training.md, "The dark end of the curve".
    """
    shape = jnp.asarray(shape, jnp.float32)
    n = curve.shape[-1]
    if not 0 < knot < n:
        raise ValueError(f"dark-end knot must lie in (0, {n}), got {knot}")
    # A curve flat at 0 up to the knot has no level to scale; the tiny floor keeps r^w finite.
    ratio = jnp.maximum(curve[..., knot:knot + 1], 1e-12) / shape[knot]
    x = jnp.arange(knot, dtype=jnp.float32) / knot
    low = shape[:knot] * ratio ** (x ** power if power else jnp.ones_like(x))
    return jnp.concatenate([low.astype(curve.dtype), curve[..., knot:]], axis=-1)


@functools.lru_cache(maxsize=1)
def camera_bank() -> CRFBank:
    """The built-in camera bank: CAMERA_BANK_SIZE curves with real cameras' spread (no file)."""
    with np.load(CAMERA_PRIOR_FILE) as f:
        return bank_from_prior({k: f[k] for k in ("mean", "components", "std")})


def bank_from_prior(prior) -> CRFBank:
    """The camera bank a `fit_prior` model gives: CAMERA_BANK_SIZE draws with CAMERA_BANK_SEED."""
    inverse = sample_prior(prior, CAMERA_BANK_SIZE, CAMERA_BANK_SEED)
    # A bank is made from forward curves; the inverse of an inverse curve is its forward curve.
    return make_bank(invert_curve(inverse), tuple(f"camera-{i:03d}" for i in range(CAMERA_BANK_SIZE)))


def family_split(n: int | None = None):
    """(train_idx, test_idx) of the parametric family: fixed shuffle, last 10 % held out."""
    n = len(parametric_bank()) if n is None else n
    perm = np.arange(n)
    np.random.RandomState(FAMILY_SPLIT_SEED).shuffle(perm)
    n_test = max(1, int(round(FAMILY_TEST_FRACTION * n)))
    return perm[:-n_test], perm[-n_test:]


def _select(bank, split, split_fn, what):
    if split not in SPLITS:
        raise CRFError(f"unknown CRF split {split!r} for {what}: expected one of {SPLITS}")
    if split == "all":
        return bank
    train, test = split_fn(len(bank))
    return bank.take(train if split == "train" else test)


def load_bank(spec: str, split: str = "train") -> CRFBank:
    """CRF bank for configs: spec "camera", "parametric" (alias "family") or "dorf:PATH"
    (.txt/.npz); split train|test|all."""
    spec = str(spec).strip()
    if spec == "camera":
        return _select(camera_bank(), split, family_split, "the camera bank")
    if spec in ("parametric", "family"):
        return _select(parametric_bank(), split, family_split, "the parametric family")
    if spec.startswith("dorf:"):
        path = spec[len("dorf:"):]
        if not path:
            raise CRFError("CRF spec 'dorf:' needs a path, e.g. 'dorf:/data/dorfCurves.txt'")
        return _select(load_dorf(path), split, dorf_split, path)
    raise CRFError(f"unknown CRF bank spec {spec!r}: expected {BANK_SPECS}")
