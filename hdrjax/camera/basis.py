"""PCA bases of camera response curves: the Linearization-Net's inverse-CRF basis.

`InverseCRFBasis` (mean + K components, zero at both ends) comes from invEMoR (`invemor.txt` /
`.npz`, Grossberg & Nayar), from EMoR's forward basis, or is fitted to any bank of curves
(`fit_basis`); `default_basis` is the one every model uses unless `crf.invemor` names a file.
"""
from __future__ import annotations

import functools
import os
import re

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from hdrjax.camera.crf import N_SAMPLES, CRFBank, CRFError, CRFFileError, load_bank, readonly


class BasisError(CRFError):
    """A PCA basis cannot be fitted or cut as asked (too few curves, bad k)."""


@flax.struct.dataclass
class InverseCRFBasis:
    """PCA basis of curves: mean f32[1024], components f32[1024, K] (zero at both ends)."""

    mean: np.ndarray
    components: np.ndarray

    @property
    def k(self) -> int:
        return int(self.components.shape[-1])

    def curve(self, weights: jax.Array) -> jax.Array:
        """g_raw = mean + weights @ components.T for weights f32[..., K] -> f32[..., 1024]."""
        return jnp.asarray(self.mean) + jnp.asarray(weights) @ jnp.asarray(self.components).T

    def truncate(self, k: int) -> "InverseCRFBasis":
        """The first k components."""
        if not 1 <= k <= self.k:
            raise BasisError(f"cannot keep {k} of {self.k} basis components")
        return InverseCRFBasis(mean=self.mean, components=readonly(self.components[:, :k]))


# EMoR's forward basis has the same layout; one class serves both.
CRFBasis = InverseCRFBasis

_EMOR_HEADERS = {"emor": ("E", "f0", "h"), "invemor": ("B", "g0", "hinv")}


def _read_emor_text(path, kind):
    grid_name, mean_name, comp_name = _EMOR_HEADERS[kind]
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError as e:
        raise CRFFileError(path, f"cannot read ({e.strerror or e})") from None
    header = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*(?:\(\s*\d+\s*\))?)\s*=\s*$")
    blocks, order, current = {}, [], None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        m = header.match(line)
        if m:
            current = re.sub(r"\s+", "", m.group(1))
            if current in blocks:
                raise CRFFileError(path, f"line {lineno}: block {current!r} appears twice")
            blocks[current], order = [], order + [current]
            continue
        if current is None:
            raise CRFFileError(path, f"line {lineno}: values before the first 'NAME =' header")
        try:
            blocks[current].extend(float(t) for t in line.split())
        except ValueError:
            raise CRFFileError(path, f"line {lineno}: not a list of numbers") from None
    comps = []
    while f"{comp_name}({len(comps) + 1})" in blocks:
        comps.append(f"{comp_name}({len(comps) + 1})")
    for name in (grid_name, mean_name) + tuple(comps[:1]):
        if name not in blocks:
            raise CRFFileError(path, f"no '{name} =' block (found {order[:4]}…); "
                                     f"is this an {kind}.txt file?")
    for name in (grid_name, mean_name, *comps):
        if len(blocks[name]) != N_SAMPLES:
            raise CRFFileError(path, f"block '{name}' has {len(blocks[name])} values, "
                                     f"expected {N_SAMPLES}")
    comp = np.stack([blocks[c] for c in comps], axis=1)
    return np.asarray(blocks[mean_name]), comp


def _read_emor_npz(path, kind):
    _, mean_name, comp_name = _EMOR_HEADERS[kind]
    try:
        with np.load(path, allow_pickle=False) as z:
            if mean_name not in z.files or comp_name not in z.files:
                raise CRFFileError(path, f"needs arrays '{mean_name}' and '{comp_name}', "
                                         f"has {sorted(z.files)}")
            mean = np.asarray(z[mean_name], dtype=np.float64)
            comp = np.asarray(z[comp_name], dtype=np.float64)
    except CRFFileError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise CRFFileError(path, f"not a readable .npz ({e})") from None
    if mean.shape != (N_SAMPLES,) or comp.ndim != 2 or comp.shape[0] != N_SAMPLES:
        raise CRFFileError(path, f"'{mean_name}' {mean.shape} / '{comp_name}' {comp.shape}: "
                                 f"expected ({N_SAMPLES},) and ({N_SAMPLES}, K)")
    return mean, comp


def _load_emor_like(path, k, kind):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CRFFileError(path, "no such file")
    if path.lower().endswith(".npz"):
        mean, comp = _read_emor_npz(path, kind)
    else:
        mean, comp = _read_emor_text(path, kind)
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(comp))):
        raise CRFFileError(path, "non-finite values")
    if k is not None:
        if not 1 <= k <= comp.shape[1]:
            raise CRFFileError(path, f"asked for {k} components, the file has {comp.shape[1]}")
        comp = comp[:, :k]
    return InverseCRFBasis(mean=readonly(mean), components=readonly(comp))


def load_invemor(path, k: int | None = 11) -> InverseCRFBasis:
    """invEMoR basis (g0, hinv(1..k)) from `invemor.txt` or its `.npz` (`g0`, `hinv`).

    k = 11 is what the reference's Linearization-Net uses; k=None keeps all 25.
    """
    return _load_emor_like(path, k, "invemor")


def load_emor(path, k: int | None = None) -> InverseCRFBasis:
    """EMoR forward basis (f0, h(1..k)) from `emor.txt` or its `.npz` (`f0`, `h`)."""
    return _load_emor_like(path, k, "emor")


def fit_basis(bank: CRFBank, k: int) -> InverseCRFBasis:
    """PCA (mean + k components) of the bank's inverse curves, signs fixed, zero at the ends."""
    g = np.asarray(bank.inverse, dtype=np.float64)
    if not 1 <= k <= min(len(g) - 1, g.shape[1]):
        raise BasisError(f"cannot fit {k} components to {len(g)} curves")
    mean = g.mean(axis=0)
    x = g - mean
    # Principal axes from the small N x N Gram matrix (N curves << 1024 samples): much
    # cheaper than an SVD of x, and exact enough for the leading components.
    evals, evecs = np.linalg.eigh(x @ x.T)
    top = np.argsort(evals)[::-1][:k]
    if np.any(evals[top] <= 1e-12 * max(evals.max(), 1e-300)):
        raise BasisError(f"the {len(g)} inverse curves span fewer than {k} directions")
    comp = (x.T @ evecs[:, top]) / np.sqrt(evals[top])
    # Inverse curves are all 0 and 1 at the ends, so components are ~0 there; make it exact
    # (as invEMoR's hinv) so mean + w @ comp keeps the mean's endpoints for any w.
    comp[0] = 0.0
    comp[-1] = 0.0
    # SVD signs are arbitrary: make the largest-magnitude entry of each component positive.
    peak = comp[np.argmax(np.abs(comp), axis=0), np.arange(k)]
    comp *= np.where(peak < 0, -1.0, 1.0)
    return InverseCRFBasis(mean=readonly(mean), components=readonly(comp))


@functools.lru_cache(maxsize=8)
def default_basis(k: int = 11) -> InverseCRFBasis:
    """PCA basis of the parametric family's training members (no file needed).

    The shipped model's Linearization-Net predicts coefficients in this basis, so it stays
    fitted to the parametric family whatever bank training draws its curves from."""
    return fit_basis(load_bank("parametric", "train"), k)
