"""Pinhole views of equirectangular panoramas, so training patches look like photographs.

Conventions.  World frame: x right, y up, z forward.  An equirectangular image of W x H
pixels maps longitude lon in [-pi, pi) to columns and latitude lat in [pi/2, -pi/2] to rows,
pixel centres at integer coordinates:  u = (lon / 2pi + 1/2) W - 1/2,  v = (1/2 - lat / pi) H - 1/2,
so the centre of the image (u, v) = (W/2 - 1/2, H/2 - 1/2) is the direction (0, 0, 1).
A camera with yaw 0, pitch 0, roll 0 looks along +z with +y up; positive yaw turns right
(toward +x, increasing u), positive pitch looks up; roll turns the camera about its axis.
"""
from __future__ import annotations

import math

import cv2
import numpy as np


def rotation(yaw_deg: float, pitch_deg: float, roll_deg: float = 0.0) -> np.ndarray:
    """Camera-to-world rotation f64[3, 3]: R = R_yaw @ R_pitch @ R_roll."""
    y, p, r = (math.radians(a) for a in (yaw_deg, pitch_deg, roll_deg))
    r_yaw = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    r_pitch = np.array([[1, 0, 0], [0, math.cos(p), math.sin(p)], [0, -math.sin(p), math.cos(p)]])
    r_roll = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return r_yaw @ r_pitch @ r_roll


def view_rays(height: int, width: int, fov_deg: float, yaw_deg: float, pitch_deg: float,
              roll_deg: float = 0.0) -> np.ndarray:
    """Unit world directions f32[height, width, 3] through the pixel centres of a pinhole view.

    `fov_deg` is the horizontal field of view (across `width`); pixels are square.
    """
    focal = (width / 2) / math.tan(math.radians(fov_deg) / 2)
    xs = ((np.arange(width) + 0.5 - width / 2) / focal).astype(np.float32)
    ys = (-(np.arange(height) + 0.5 - height / 2) / focal).astype(np.float32)  # rows go down
    cam = np.empty((height, width, 3), np.float32)
    cam[..., 0], cam[..., 1], cam[..., 2] = xs[None, :], ys[:, None], 1.0
    cam /= np.sqrt(xs[None, :] ** 2 + ys[:, None] ** 2 + 1.0)[..., None]
    # float32 keeps coordinates to ~1e-3 pixel even in an 8k panorama.
    return cam @ rotation(yaw_deg, pitch_deg, roll_deg).T.astype(np.float32)


def equirect_coords(directions: np.ndarray, pano_height: int, pano_width: int):
    """Pixel coordinates (u, v) in an equirectangular image of the unit `directions`."""
    x, y, z = directions[..., 0], directions[..., 1], directions[..., 2]
    lon = np.arctan2(x, z)
    lat = np.arcsin(np.clip(y, -1.0, 1.0))
    u = (lon / (2 * np.pi) + 0.5) * pano_width - 0.5
    v = (0.5 - lat / np.pi) * pano_height - 0.5
    return u, v


def render_view(pano: np.ndarray, size, fov_deg: float, yaw_deg: float, pitch_deg: float,
                roll_deg: float = 0.0, *, antialias: bool = True) -> np.ndarray:
    """Pinhole view f32[h, w, C] of the equirectangular `pano` (bilinear, wrapping in longitude).

    With `antialias`, a view that shrinks the panorama (more than ~1.5 source pixels per view
    pixel) is rendered at k times the size and reduced with area averaging.
    """
    h, w = (size, size) if np.isscalar(size) else (int(size[0]), int(size[1]))
    ph, pw = pano.shape[:2]
    k = 1
    if antialias:
        # Source pixels per view pixel at the view centre (the most magnified part of a
        # pinhole view, so the edges are covered too).
        density = (pw / (2 * math.pi)) * (2 * math.tan(math.radians(fov_deg) / 2)) / w
        k = int(min(4, math.ceil(density - 0.5))) if density > 1.5 else 1
    u, v = equirect_coords(view_rays(h * k, w * k, fov_deg, yaw_deg, pitch_deg, roll_deg), ph, pw)
    # Rows are clamped (no wrap across the poles); columns wrap around via BORDER_WRAP.
    v = np.clip(v, 0, ph - 1)
    u = np.mod(u + 0.5, pw) - 0.5
    out = cv2.remap(np.ascontiguousarray(pano, np.float32), u.astype(np.float32),
                    v.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    out = out.reshape(h * k, w * k, *pano.shape[2:])
    if k > 1:
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_AREA).reshape(h, w, *pano.shape[2:])
    return out


def random_view_params(rng: np.random.Generator, *, fov_range, pitch_std, pitch_max,
                       roll_std=0.0) -> dict:
    """Draw a view: fov ~ U(range), yaw ~ U[0, 360), pitch ~ N(0, std) clipped, roll ~ N(0, std)."""
    fov = rng.uniform(float(fov_range[0]), float(fov_range[1]))
    yaw = rng.uniform(0.0, 360.0)
    pitch = float(np.clip(rng.normal(0.0, pitch_std), -pitch_max, pitch_max)) if pitch_std else 0.0
    roll = float(rng.normal(0.0, roll_std)) if roll_std else 0.0
    return {"fov_deg": fov, "yaw_deg": yaw, "pitch_deg": pitch, "roll_deg": roll}
