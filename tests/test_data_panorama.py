"""Pinhole views of equirectangular panoramas."""
import math

import numpy as np
import pytest

from hdrjax.data.panorama import (equirect_coords, random_view_params, render_view, rotation,
                                  view_rays)

H, W = 64, 128


@pytest.fixture(scope="module")
def ramp():
    # Channel 0 = column index, channel 1 = row index: a view returns where it sampled
    # (bilinear interpolation of a linear ramp is exact away from the wrap seam).
    pano = np.zeros((H, W, 3), np.float32)
    pano[..., 0] = np.arange(W)[None, :]
    pano[..., 1] = np.arange(H)[:, None]
    return pano


def test_rays_are_unit_and_centre_looks_forward():
    rays = view_rays(9, 15, 70.0, 0.0, 0.0)
    assert rays.shape == (9, 15, 3)
    np.testing.assert_allclose(np.linalg.norm(rays, axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(rays[4, 7], [0, 0, 1], atol=1e-6)
    # Left/right edges span the horizontal field of view (pixel centres half a pixel in).
    focal = 7.5 / math.tan(math.radians(35))
    half = math.atan(7.0 / focal)
    assert math.atan2(rays[4, -1, 0], rays[4, -1, 2]) == pytest.approx(half, abs=1e-6)
    assert rays[0, 7, 1] > 0 > rays[-1, 7, 1]  # row 0 is the top of the image


def test_rotation_conventions():
    forward = np.array([0.0, 0.0, 1.0])
    np.testing.assert_allclose(rotation(90, 0) @ forward, [1, 0, 0], atol=1e-12)  # yaw right
    np.testing.assert_allclose(rotation(0, 90) @ forward, [0, 1, 0], atol=1e-12)  # pitch up
    r = rotation(33, -20, 5)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)


def test_yaw0_pitch0_centre_is_equirect_centre(ramp):
    rng = np.random.default_rng(0)
    pano = rng.random((H, W, 3)).astype(np.float32)
    view = render_view(pano, 9, 60.0, 0.0, 0.0, antialias=False)
    assert view.shape == (9, 9, 3) and view.dtype == np.float32
    # Direction (0, 0, 1) is the corner shared by the four central pixels: their mean.
    expected = pano[H // 2 - 1:H // 2 + 1, W // 2 - 1:W // 2 + 1].mean((0, 1))
    np.testing.assert_allclose(view[4, 4], expected, rtol=1e-5)
    np.testing.assert_allclose(render_view(ramp, 9, 60.0, 0.0, 0.0, antialias=False)[4, 4, :2],
                               [W / 2 - 0.5, H / 2 - 0.5], atol=1e-4)


@pytest.mark.parametrize("yaw,pitch,u,v", [
    (90.0, 0.0, 3 * W / 4 - 0.5, H / 2 - 0.5),     # a quarter turn right
    (-90.0, 0.0, W / 4 - 0.5, H / 2 - 0.5),        # a quarter turn left
    (0.0, 30.0, W / 2 - 0.5, H / 3 - 0.5),         # 30 degrees up = a sixth of the height up
    (45.0, -45.0, 5 * W / 8 - 0.5, 3 * H / 4 - 0.5),
])
def test_known_directions(ramp, yaw, pitch, u, v):
    centre = render_view(ramp, 5, 50.0, yaw, pitch, antialias=False)[2, 2, :2]
    np.testing.assert_allclose(centre, [u, v], atol=1e-3)


def test_whole_view_matches_the_projection_formula(ramp):
    # Independent float64 reference for every pixel of a rotated, rolled view.
    size, fov, yaw, pitch, roll = 12, 80.0, 33.0, -20.0, 5.0
    f = (size / 2) / math.tan(math.radians(fov) / 2)
    j, i = np.meshgrid(np.arange(size), np.arange(size))
    cam = np.stack([(j + 0.5 - size / 2) / f, -(i + 0.5 - size / 2) / f,
                    np.ones_like(j, float)], -1)
    world = cam @ rotation(yaw, pitch, roll).T
    lon = np.arctan2(world[..., 0], world[..., 2])
    lat = np.arctan2(world[..., 1], np.hypot(world[..., 0], world[..., 2]))
    u = (lon / (2 * np.pi) + 0.5) * W - 0.5
    v = (0.5 - lat / np.pi) * H - 0.5
    view = render_view(ramp, size, fov, yaw, pitch, roll, antialias=False)
    np.testing.assert_allclose(view[..., 0], u, atol=2e-3)
    np.testing.assert_allclose(view[..., 1], v, atol=2e-3)
    cu, cv = equirect_coords(view_rays(size, size, fov, yaw, pitch, roll), H, W)
    np.testing.assert_allclose(cu, u, atol=2e-3)
    np.testing.assert_allclose(cv, v, atol=2e-3)


def test_wraps_across_the_seam():
    # Looking backwards (yaw 180) samples both the first and the last columns, no border.
    pano = np.zeros((H, W, 3), np.float32)
    pano[:, :2] = 1.0
    pano[:, -2:] = 1.0
    view = render_view(pano, 8, 10.0, 180.0, 0.0, antialias=False)
    assert view[:, 3:5].min() > 0.99


def test_antialiasing_averages_a_minified_view():
    # A one-pixel checkerboard seen through a wide, small view averages to grey with
    # antialiasing; plain bilinear sampling aliases to stripes.
    pano = np.indices((256, 512)).sum(0) % 2
    pano = np.repeat(pano[..., None], 3, -1).astype(np.float32)
    smooth = render_view(pano, 16, 90.0, 0.0, 0.0, antialias=True)
    assert smooth.shape == (16, 16, 3)
    assert np.abs(smooth - 0.5).max() < 0.2
    assert render_view(pano, 16, 90.0, 0.0, 0.0, antialias=False).std() > smooth.std()


def test_random_view_params_ranges():
    rng = np.random.default_rng(1)
    draws = [random_view_params(rng, fov_range=(50, 90), pitch_std=15, pitch_max=30)
             for _ in range(500)]
    fov = np.array([d["fov_deg"] for d in draws])
    pitch = np.array([d["pitch_deg"] for d in draws])
    yaw = np.array([d["yaw_deg"] for d in draws])
    assert 50 <= fov.min() and fov.max() <= 90
    assert np.abs(pitch).max() <= 30 and 10 < pitch.std() < 16
    assert 0 <= yaw.min() and yaw.max() < 360 and yaw.std() > 90
    assert all(d["roll_deg"] == 0 for d in draws)
