"""How far a network's output at a pixel depends on the input: measured per set of weights.

Cropped inference (`hdrjax.inference.regions`) is exact when every pixel whose output is kept lies at
least `context` pixels inside its crop, where `context` is the distance beyond which the
input no longer changes that pixel's output. For the convolutional nets here the theoretical
receptive field is a hard bound (the Hallucination-Net's VGG-16 encoder with five poolings
and its decoder: ~160 px), but what matters is the *effective* one, which depends on the
trained weights. We measure it directly for the quantity inference uses:

    profile[d] = max |f(crop)[p] − f(whole)[p]|  over pixels p at distance d from the crop edge

on a probe image (an embedded procedural HDR scene, no file) whose crop starts on the
32-pixel grid, with `margin` pixels of real content removed around it. `context` is the
smallest d with profile ≤ tol for every distance ≥ d. For the Hallucination-Net f is the
blended output A = B + α·relu(r), so only pixels the blend uses count (A = B exactly where
α = 0, in both runs); for the Dequantization- and Refinement-Net every pixel counts.

Measurements are cached by a hash of the network's weights in
`<cache dir>/receptive-field.json` (`hdrjax.cache.cache_dir()`; safe to delete).
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
from typing import Callable, Sequence

import numpy as np

logger = logging.getLogger("hdrjax.inference.receptive_field")

# What a probe can measure: distances up to LIMIT[net] px (margin = limit, crop side
# 2·limit + 64). Beyond the theoretical receptive field every difference is exactly 0.
LIMIT = {"dequantization": 96, "refinement": 96, "hallucination": 192}
PROBE_VERSION = 1  # bump when the probe or the procedure changes (invalidates the cache)
TOLERANCE = 5e-4  # relative to the probe output's range: half the 1e-3 the tests demand


@dataclasses.dataclass(frozen=True)
class Measurement:
    net: str
    context: int  # px: outputs farther than this inside a crop equal the one-pass output
    tolerance: float  # absolute, in output units (TOLERANCE × the probe output's range)
    profile: tuple[float, ...]  # max |difference| at each distance 0, 1, ... from the crop edge
    bounded: bool  # False: the profile never fell below tolerance (context = the probe's limit)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def profile(fn: Callable, inputs: Sequence[np.ndarray], margin: int) -> tuple[np.ndarray, np.ndarray]:
    """(max |fn(crop) − fn(whole)| at each distance from the crop's edge, fn(whole)).

    fn: batched NHWC → NHWC.

    inputs: f32[H, W, c] arrays cropped alike; the crop is the whole image less `margin` px on
    every side (margin a multiple of 32, so the crop keeps the pooling grid).
    """
    whole = np.asarray(fn(*[x[None] for x in inputs]))[0]
    m = margin
    part = np.asarray(fn(*[np.ascontiguousarray(x[None, m:-m, m:-m]) for x in inputs]))[0]
    diff = np.abs(part - whole[m:-m, m:-m]).max(axis=-1)
    h, w = diff.shape
    yy, xx = np.mgrid[0:h, 0:w]
    dist = np.minimum(np.minimum(yy, xx), np.minimum(h - 1 - yy, w - 1 - xx))
    out = np.zeros(dist.max() + 1)
    np.maximum.at(out, dist.ravel(), diff.ravel())
    return out, whole


def context_from_profile(prof: np.ndarray, tol: float) -> tuple[int, bool]:
    """(smallest d with prof[k] <= tol for all k >= d, whether that happened inside the profile)."""
    above = np.nonzero(prof > tol)[0]
    if not len(above):
        return 0, True
    d = int(above[-1]) + 1
    return d, d < len(prof) - 1


def probe_images(size: int, *, seed: int = 0) -> dict[str, np.ndarray]:
    """LDR-like, dequantised, linear and hallucinated probes (f32[size, size, 3]) from one scene.

    The linear probe is exposed so ~20 % of its pixels are lit (α > 0), spread over the scene,
    so the Hallucination-Net's profile has lit pixels at every distance from the crop edge.
    """
    from hdrjax.data.procedural import procedural_scene

    hdr = np.asarray(procedural_scene(seed, 0, (size, size)), np.float32)
    level = float(np.percentile(hdr.max(axis=-1), 80.0))
    linear = np.clip(hdr / max(level / 0.95, 1e-8), 0.0, 1.0).astype(np.float32)
    ldr = (np.round(255.0 * linear ** (1 / 2.2)) / 255.0).astype(np.float32)
    # Recovered highlights up to ~5× white, as in a photograph (a sun at 300× would make the
    # range, and with it the relative tolerance, meaningless for the rest of the image).
    hallucinated = (linear + np.clip(hdr / max(level, 1e-8) - 1.0, 0.0, 4.0)).astype(np.float32)
    return {"ldr": ldr, "linear": linear, "hallucinated": hallucinated}


def weights_fingerprint(variables: dict, net: str) -> str:
    """sha256 of one network's parameters and statistics (names, shapes, dtypes, bytes)."""
    import jax

    h = hashlib.sha256()
    for collection in ("params", "batch_stats"):
        tree = (variables.get(collection) or {}).get(net)
        if tree is None:
            continue
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            a = np.asarray(leaf)
            h.update(f"{collection}/{jax.tree_util.keystr(path)}:{a.shape}:{a.dtype}".encode())
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def measure(net: str, fn: Callable, *, limit: int | None = None, tolerance: float = TOLERANCE) -> Measurement:
    """Measure `net`'s context; fn is the jitted stage function taking the net's probe inputs."""
    limit = limit or LIMIT[net]
    margin = int(math.ceil(limit / 32) * 32)
    probes = probe_images(2 * margin + 2 * margin + 64)
    if net == "dequantization":
        inputs = [probes["ldr"]]
    elif net == "hallucination":
        inputs = [probes["linear"]]
    elif net == "refinement":
        inputs = [probes["hallucinated"], probes["linear"], probes["ldr"]]
    else:
        raise ValueError(f"no receptive-field probe for {net!r}")
    prof, whole = profile(fn, inputs, margin)
    tol = tolerance * max(float(whole.max() - whole.min()), 1e-6)
    context, bounded = context_from_profile(prof, tol)
    if not bounded:
        context = len(prof)
    return Measurement(net, context, tol, tuple(float(x) for x in prof), bounded)


_MEMO: dict[str, Measurement] = {}


def _key(net: str, fingerprint: str, tolerance: float) -> str:
    return f"{net}:{fingerprint}:{tolerance}:v{PROBE_VERSION}"


def _from_manifest(net: str, fingerprint: str, tolerance: float) -> Measurement | None:
    """The measurement a loaded shipped model's manifest holds for these weights, if it fits."""
    from hdrjax.weights import pretrained

    entry = pretrained.stored_receptive_field(net, fingerprint)
    if entry is None or entry.get("probe_version") != PROBE_VERSION or entry.get("tolerance_relative") != tolerance:
        return None  # measured with another probe or tolerance: measure again
    try:
        fields = {k: entry[k] for k in ("net", "context", "tolerance", "profile", "bounded")}
        return Measurement(**{**fields, "profile": tuple(fields["profile"])})
    except (TypeError, KeyError, ValueError):
        return None  # an entry from another version


def cached_context(net: str, variables: dict, fn: Callable, *, tolerance: float = TOLERANCE, cache: bool = True) -> Measurement:
    """`measure`, remembered per weights (in this process and in the on-disk cache)."""
    from hdrjax.cache import cache_dir, read_json, write_json

    fingerprint = weights_fingerprint(variables, net)
    key = _key(net, fingerprint, tolerance)
    if key in _MEMO:
        return _MEMO[key]
    stored = _from_manifest(net, fingerprint, tolerance)
    if stored is not None:
        _MEMO[key] = stored
        return stored
    path = cache_dir() / "receptive-field.json" if cache else None
    stored = read_json(path) if path else {}
    if key in stored:
        try:
            m = Measurement(**{**stored[key], "profile": tuple(stored[key]["profile"])})
            _MEMO[key] = m
            return m
        except TypeError:
            pass  # an entry written by another version: measure again
    logger.info(f"measuring the {net}-Net's receptive field for these weights (once; cached)")
    m = measure(net, fn, tolerance=tolerance)
    _MEMO[key] = m
    if path:
        stored = read_json(path)
        stored[key] = m.to_json()
        write_json(path, stored)
    return m
