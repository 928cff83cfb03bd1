"""Procedural HDR scenes: dead-leaves geometry, smooth illumination and emissive light sources.

A scene is a pure function of (seed, index, size).  The statistics follow what makes natural
images natural and HDR images hard:
- occlusion and scale invariance: a dead-leaves stack of discs, ellipses and rectangles with
  radii drawn from p(r) ~ r^-3 (the scale-invariant density), painted back to front;
- texture and shading: per-leaf albedo (log-uniform), colour, linear shading and a 1/f
  (fractal) reflectance texture;
- illumination: a key light with soft shadows and a low-frequency falloff plus a coloured fill
  light; an optional sky behind the leaves (gradient, clouds);
- emissive sources 10-10^4x the diffuse level: a sun disc with atmospheric glow, lamps
  (emissive leaves: bulbs, windows, panels) and specular highlights on glossy leaves;
- optics: a small lens blur and veiling glare around the brightest sources.
Three scene kinds (day outdoor, indoor, night) vary the balance.  Everything is numpy/cv2;
a 256x256 scene costs about 10-20 ms of one CPU core.
"""
from __future__ import annotations

import functools

import cv2
import numpy as np

from hdrjax.tonemap import REC709_LUMA

_SHIFT = 4  # cv2 drawing with 4 fractional bits: sub-pixel leaf geometry
_ONE = 1 << _SHIFT
_TAG = 0x50524F43  # "PROC": keeps these streams apart from other users of (seed, index)


def scene_rng(seed: int, index: int, stream: int = 0) -> np.random.Generator:
    """The generator a scene draws from: a pure function of (seed, index, stream)."""
    return np.random.default_rng(np.random.SeedSequence([_TAG, int(seed), int(stream),
                                                         int(index)]))


@functools.lru_cache(maxsize=8)
def _grid(h, w):
    # Pixel-centre coordinates, cached per size (read-only so callers cannot corrupt them).
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy.flags.writeable = False
    xx.flags.writeable = False
    return yy, xx


_LUMA = np.array(REC709_LUMA, np.float32)


def _log_uniform(rng, lo, hi, size=None):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


def _bb(rng, lo, hi):
    # Colour of a black body at a temperature drawn uniformly from [lo, hi] kelvin.
    return blackbody_rgb(rng.uniform(lo, hi))


def fractal_noise(rng, h, w, *, min_cell=1.0, max_cell=None, beta=1.0):
    """Zero-mean, unit-std noise with amplitude ~ f^-beta between two spatial scales (pixels)."""
    max_cell = max(h, w) if max_cell is None else max_cell
    out = np.zeros((h, w), np.float32)
    cell = float(max_cell)
    while cell >= min_cell * 0.999:
        # One octave: white noise on a grid of `cell`-pixel spacing, smoothly upsampled.
        gh, gw = int(np.ceil(h / cell)) + 1, int(np.ceil(w / cell)) + 1
        octave = rng.standard_normal((gh, gw), dtype=np.float32)
        if cell > 1.0:
            # Cubic keeps coarse octaves smooth; linear is enough (and cheaper) for fine ones.
            interp = cv2.INTER_CUBIC if cell > 4 else cv2.INTER_LINEAR
            octave = cv2.resize(octave, (w, h), interpolation=interp)
        else:
            octave = octave[:h, :w]
        out += np.float32(cell ** beta) * octave
        cell /= 2.0
    out -= out.mean()
    out *= 1.0 / (float(out.std()) + 1e-8)
    return out


def blackbody_rgb(kelvin):
    """Approximate linear-RGB colour of a black body at `kelvin`, normalised to luminance 1."""
    t = np.clip(np.asarray(kelvin, np.float64) / 100.0, 10.0, 400.0)
    # Tanner Helland's fit of the CIE data (sRGB-encoded 0..255), then linearised.
    hot = np.maximum(t - 60, 1e-6)  # both np.where branches are evaluated
    r = np.where(t <= 66, 255.0, 329.698727446 * hot ** -0.1332047592)
    g = np.where(t <= 66, 99.4708025861 * np.log(t) - 161.1195681661,
                 288.1221695283 * hot ** -0.0755148492)
    b = np.where(t >= 66, 255.0,
                 np.where(t <= 19, 0.0, 138.5177312231 * np.log(np.maximum(t - 10, 1e-6))
                          - 305.0447927307))
    rgb = np.clip(np.stack([r, g, b], -1) / 255.0, 0.0, 1.0) ** 2.2
    lum = rgb @ _LUMA.astype(np.float64)
    return (rgb / np.maximum(lum, 1e-6)[..., None]).astype(np.float32)


def _draw_leaves(label, rng, n, y_lo, y_hi, w, r_min, r_max, alpha, first_id):
    # Paint n leaves (ids first_id..first_id+n-1) back to front into the int32 label map.
    u = rng.random(n)
    a = 1.0 - alpha  # inverse CDF of p(r) ~ r^-alpha on [r_min, r_max]
    radius = (r_min ** a + u * (r_max ** a - r_min ** a)) ** (1.0 / a)
    cy = rng.uniform(y_lo, y_hi, n)
    cx = rng.uniform(-0.05 * w, 1.05 * w, n)
    shape = rng.choice(3, n, p=[0.5, 0.25, 0.25])  # disc, ellipse, rotated rectangle
    aspect = rng.uniform(0.25, 1.0, n)
    angle = rng.uniform(0, 180, n)
    ri = np.maximum(radius * _ONE, _ONE / 2)
    ai = np.maximum(radius * aspect * _ONE, _ONE / 2)
    # Rectangle corners for every leaf, computed at once (cheaper than per leaf).
    c, si = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    ux, uy = c * ri, si * ri  # half-length axis
    vx, vy = -si * ai, c * ai  # half-width axis
    px, py = cx * _ONE, cy * _ONE
    corners = np.stack([np.stack([px - ux - vx, py - uy - vy], -1),
                        np.stack([px + ux - vx, py + uy - vy], -1),
                        np.stack([px + ux + vx, py + uy + vy], -1),
                        np.stack([px - ux + vx, py - uy + vy], -1)], 1)
    corners = np.round(corners).astype(np.int32)
    params = zip(np.round(px).astype(np.int64).tolist(), np.round(py).astype(np.int64).tolist(),
                 np.round(ri).astype(np.int64).tolist(), np.round(ai).astype(np.int64).tolist(),
                 shape.tolist(), angle.tolist())
    for k, (x, y, r, ra, kind, ang) in enumerate(params):
        lid = first_id + k
        if kind == 0:
            cv2.circle(label, (x, y), r, lid, -1, cv2.LINE_8, _SHIFT)
        elif kind == 1:
            cv2.ellipse(label, (x, y), (r, ra), ang, 0, 360, lid, -1, cv2.LINE_8, _SHIFT)
        else:
            cv2.fillConvexPoly(label, corners[k], lid, cv2.LINE_8, _SHIFT)
    return cx.astype(np.float32), cy.astype(np.float32), radius.astype(np.float32)


def procedural_scene(seed: int, index: int, size, *, stream: int = 0) -> np.ndarray:
    """HDR scene f32[H, W, 3] (linear radiance, mid-grey diffuse ~ 0.18) for (seed, index).

    `size` is an int or (height, width); `stream` separates scene sets (train 0, test 1).
    """
    h, w = (size, size) if np.isscalar(size) else (int(size[0]), int(size[1]))
    rng = scene_rng(seed, index, stream)
    s = float(min(h, w))
    yy, xx = _grid(h, w)
    kind = int(rng.choice(3, p=[0.45, 0.33, 0.22]))  # 0 day outdoor, 1 indoor, 2 night
    # NumPy 2 promotes float32 arrays with numpy float64 scalars to float64, so every scalar
    # that meets an image below is a Python float.

    # --- Lights.  Emitters are set relative to `diffuse`: mid-grey (0.18) under key + fill.
    if kind == 0:
        key_rgb, fill_rgb = _bb(rng, 4500, 6500), _bb(rng, 7500, 15000)
        e_fill = rng.uniform(0.08, 0.35)
    elif kind == 1:
        key_rgb, fill_rgb = _bb(rng, 2600, 5000), _bb(rng, 3000, 6500)
        e_fill = rng.uniform(0.1, 0.5)
    else:
        key_rgb, fill_rgb = _bb(rng, 2200, 4000), _bb(rng, 6000, 12000)  # street lamps, moon
        e_fill = rng.uniform(0.02, 0.15)
    diffuse = 0.18 * (1.0 + e_fill)

    # --- Geometry: sky (label 0) above a possibly tilted horizon, ground/wall (label 1)
    # below it, then the dead-leaves stack (labels 2...) painted over both.
    has_sky = kind != 1 and rng.random() < 0.75
    label = np.zeros((h, w), np.int32)
    horizon = -1.0
    if has_sky:
        horizon = rng.uniform(0.15, 0.65) * h
        tilt = rng.normal(0, 0.08) * w / 2
        ground = np.array([[0, horizon - tilt], [w, horizon + tilt], [w, h + 1], [0, h + 1]])
        cv2.fillConvexPoly(label, np.round(ground * _ONE).astype(np.int32), 1, cv2.LINE_8,
                           _SHIFT)
    else:
        label[:] = 1
    n_leaves = int(np.clip(rng.uniform(0.5, 1.0) * 600 * (h * w) / 256 ** 2, 30, 3000))
    # Leaves start a little above the horizon so most of the sky stays visible (trees,
    # buildings against the sky).
    y_lo = 0.0 if not has_sky else max(0.0, horizon - rng.uniform(0.05, 0.6) * h)
    cx, cy, rad = _draw_leaves(label, rng, n_leaves, y_lo, 1.05 * h, w, max(1.0, s / 80),
                               0.5 * s, rng.uniform(2.6, 3.1), first_id=2)
    n_lab = n_leaves + 2
    cx = np.concatenate([[w / 2, w / 2], cx]).astype(np.float32)
    cy = np.concatenate([[h / 2, h / 2], cy]).astype(np.float32)
    rad = np.concatenate([[s, s], rad]).astype(np.float32)

    # --- Per-leaf reflectance: log-uniform albedo, mostly muted colours, some saturated ones,
    # a linear shading ramp and a 1/f texture of leaf-specific strength.
    albedo = _log_uniform(rng, 0.02, 0.85, n_lab)
    chroma_sd = np.where(rng.random(n_lab) < 0.15, 0.6, 0.15)
    tint = np.exp(rng.standard_normal((n_lab, 3)) * chroma_sd[:, None])
    tint /= (tint @ _LUMA)[:, None]
    refl = np.clip(albedo[:, None] * tint, 0.005, 0.95).astype(np.float32)
    grad = (rng.standard_normal((n_lab, 2)) * 0.4 / rad[:, None]).astype(np.float32)
    tex_amp = (rng.uniform(0, 0.8, n_lab) ** 2).astype(np.float32)

    dx = xx - np.take(cx, label)
    dy = yy - np.take(cy, label)
    shade = 1.0 + np.take(grad[:, 0], label) * dx + np.take(grad[:, 1], label) * dy
    np.clip(shade, 0.2, 2.0, out=shade)
    tex = fractal_noise(rng, h, w, min_cell=2.0, max_cell=s / 4)
    shade *= np.exp(np.take(tex_amp, label) * tex)

    # --- Illumination: a key light with soft-edged shadows and a smooth falloff, plus fill.
    coarse = fractal_noise(rng, h, w, min_cell=s / 16, max_cell=s)
    lit = np.clip((coarse - rng.uniform(-1.2, 1.0)) * (1.0 / rng.uniform(0.1, 0.8)) + 0.5,
                  0.0, 1.0)
    ax, ay = (rng.standard_normal(2) * (0.6 / s)).tolist()
    key = lit * np.exp(ax * (xx - w / 2) + ay * (yy - h / 2))
    if kind == 2:
        # Night: pools of lamp light rather than one sun.
        key *= 0.5 * np.exp(1.2 * fractal_noise(rng, h, w, min_cell=s / 8, max_cell=s / 2))
    key_term = (shade * key)[..., None] * (np.take(refl, label, axis=0) * key_rgb)
    fill_term = shade[..., None] * (np.take(refl, label, axis=0) * (e_fill * fill_rgb))
    radiance = key_term + fill_term

    # --- Specular highlights: a Gaussian lobe on some glossy leaves where the key light hits.
    glossy = rng.random(n_lab) < rng.uniform(0.02, 0.15)
    glossy[:2] = False
    peak = np.where(glossy, _log_uniform(rng, 5.0, 300.0, n_lab), 0.0).astype(np.float32)
    off = (rng.uniform(-0.5, 0.5, (n_lab, 2)) * rad[:, None]).astype(np.float32)
    inv2var = (0.5 / np.maximum(rad * rng.uniform(0.05, 0.25, n_lab), 0.6) ** 2)
    where = np.flatnonzero(np.take(glossy, label))
    if where.size:
        lab = label.ravel()[where]
        ex = dx.ravel()[where] - off[lab, 0]
        ey = dy.ravel()[where] - off[lab, 1]
        lobe = peak[lab] * np.exp(-(ex * ex + ey * ey) * inv2var[lab].astype(np.float32))
        lobe *= key.ravel()[where] * diffuse
        radiance.reshape(-1, 3)[where] += lobe[:, None] * key_rgb

    # --- Lamps: emissive leaves (bulbs, windows, panels) 10-10^4 x diffuse, with a bright
    # core.  Chosen among small leaves painted late (in front) so most stay visible.
    n_lamps = int(rng.poisson([0.6, 2.5, 5.0][kind])) + (kind != 0)
    small = np.flatnonzero(rad[2:] < 0.08 * s) + 2
    front = small[small.size // 3:]
    if n_lamps and front.size:
        lamps = rng.choice(front, min(n_lamps, front.size), replace=False)
        level = _log_uniform(rng, 10.0, 1e4, lamps.size) * diffuse
        colour = blackbody_rgb(rng.uniform(2000, 6500, lamps.size))
        neon = rng.random(lamps.size) < 0.15
        hue = np.eye(3, dtype=np.float32)[rng.integers(0, 3, lamps.size)] * 0.8 + 0.1
        colour = np.where(neon[:, None], hue / (hue @ _LUMA)[:, None], colour)
        emission = np.zeros((n_lab, 3), np.float32)
        emission[lamps] = level[:, None] * colour
        is_lamp = np.zeros(n_lab, bool)
        is_lamp[lamps] = True
        where = np.flatnonzero(np.take(is_lamp, label))
        if where.size:
            lab = label.ravel()[where]
            r2 = (dx.ravel()[where] ** 2 + dy.ravel()[where] ** 2) / rad[lab] ** 2
            core = 1.0 - 0.7 * np.minimum(r2, 1.0)
            radiance.reshape(-1, 3)[where] = emission[lab] * core[:, None]

    # --- Sky behind everything (label 0): gradient, clouds, and maybe a sun (moon) disc with
    # limb darkening and an atmospheric glow.
    where = np.flatnonzero(label.ravel() == 0) if has_sky else np.zeros(0, np.int64)
    if where.size:
        sky_level = float(_log_uniform(rng, 2.0, 25.0)) * diffuse * (0.05 if kind == 2 else 1.0)
        py, px = yy.ravel()[where], xx.ravel()[where]
        up = np.clip((horizon - py) / max(horizon, 1.0), 0, 1)
        clouds = fractal_noise(rng, h, w, min_cell=2.0, max_cell=s, beta=1.3).ravel()[where]
        clouds = np.maximum(clouds - rng.uniform(-0.5, 1.5), 0) * rng.uniform(0, 0.5)
        sky = sky_level * (1.0 - 0.5 * up + clouds)
        zenith = _bb(rng, 15000, 30000)
        sky_rad = sky[:, None] * (fill_rgb + up[:, None] * (0.4 * (zenith - fill_rgb)))
        if rng.random() < (0.75 if kind == 0 else 0.4):
            sx = rng.uniform(-0.1, 1.1) * w
            sy = rng.uniform(-0.1, 1.0) * max(horizon, 2.0)
            r_sun = max(1.0, float(_log_uniform(rng, 0.006, 0.03)) * s)
            level = float(_log_uniform(rng, 1e3, 1e4)) * diffuse * (0.1 if kind == 2 else 1.0)
            glow = float(_log_uniform(rng, 3.0, 60.0)) * diffuse
            width = rng.uniform(0.02, 0.15) * s
            d = np.sqrt((px - sx) ** 2 + (py - sy) ** 2) * (1.0 / r_sun)
            disc = np.clip(1.2 - d, 0, 1) * (1 - 0.3 * np.minimum(d, 1.0) ** 2)
            sun = level * disc + glow * np.exp(-np.maximum(d - 1.0, 0) * (r_sun / width))
            sky_rad += sun[:, None] * _bb(rng, 4000, 6000)
        radiance.reshape(-1, 3)[where] = sky_rad

    # --- Optics: lens blur, then veiling glare around the brightest sources.
    radiance = cv2.GaussianBlur(radiance, (0, 0), rng.uniform(0.3, 0.9))
    bright = np.maximum(radiance - 50 * diffuse, 0)
    if bright.max() > 0:
        small_h, small_w = max(1, h // 4), max(1, w // 4)
        low = cv2.resize(bright, (small_w, small_h), interpolation=cv2.INTER_AREA)
        low = cv2.GaussianBlur(low, (0, 0), max(0.5, rng.uniform(0.01, 0.05) * s / 4))
        glare = cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, 3)
        radiance += float(_log_uniform(rng, 3e-3, 3e-2)) * glare
    np.maximum(radiance, 0.0, out=radiance)
    return radiance


class ProceduralSource:
    """Random-access source of `num_scenes` scenes of `size` (a grain MapDataset source)."""

    def __init__(self, seed: int, num_scenes: int, size, *, stream: int = 0):
        self.seed, self.num_scenes, self.size, self.stream = int(seed), int(num_scenes), size, stream

    def __len__(self):
        return self.num_scenes

    def __getitem__(self, index):
        index = int(index) % self.num_scenes
        return {"hdr": procedural_scene(self.seed, index, self.size, stream=self.stream),
                "name": f"procedural_{self.seed}_{self.stream}_{index}"}

    def __repr__(self):
        return (f"ProceduralSource(seed={self.seed}, num_scenes={self.num_scenes}, "
                f"size={self.size}, stream={self.stream})")
