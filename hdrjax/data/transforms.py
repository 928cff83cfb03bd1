"""Reference patching (§1.1), mean normalisation and training augmentation (§1.2), in numpy.

All functions take and return f32[H, W, C] arrays; randomness comes from an explicit
`np.random.Generator` (grain hands one to each element, seeded by the element index).
"""
from __future__ import annotations

import cv2
import numpy as np


def resize(image: np.ndarray, height: int, width: int, interpolation: str) -> np.ndarray:
    """Resize to (height, width); "area" = INTER_AREA to shrink / bilinear to enlarge, "linear"."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    shrinking = height * width < h * w
    flag = cv2.INTER_AREA if (interpolation == "area" and shrinking) else cv2.INTER_LINEAR
    out = cv2.resize(image, (int(width), int(height)), interpolation=flag)
    return out.reshape(int(height), int(width), *image.shape[2:])


def resize_short_side(image: np.ndarray, short_side: int, interpolation: str) -> np.ndarray:
    """Resize so the shorter side is `short_side` (§1.1: factor max(S/h, S/w), rounded sizes)."""
    h, w = image.shape[:2]
    factor = max(short_side / h, short_side / w)
    return resize(image, int(round(h * factor)), int(round(w * factor)), interpolation)


def reference_crop(image: np.ndarray, index: int, size: int) -> np.ndarray:
    """§1.1 patch `index` (0: first, 1: last `size` pixels along the long side), centred across."""
    h, w = image.shape[:2]
    if min(h, w) < size:
        raise ValueError(f"image {h}x{w} is smaller than the {size}x{size} crop")
    if w >= h:  # landscape (and square): columns; the reference's rows are all 512 of them
        y0 = (h - size) // 2
        x0 = 0 if index == 0 else w - size
    else:
        x0 = (w - size) // 2
        y0 = 0 if index == 0 else h - size
    return image[y0:y0 + size, x0:x0 + size]


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central size x size window."""
    h, w = image.shape[:2]
    y0, x0 = (h - size) // 2, (w - size) // 2
    return image[y0:y0 + size, x0:x0 + size]


def mean_normalize(image: np.ndarray, target: float = 0.5, eps: float = 1e-6) -> np.ndarray:
    """§1.1: scale so the mean over all pixels and channels is `target` (x / (mean + eps) * t)."""
    mean = float(np.mean(image, dtype=np.float64))
    return (image * np.float32(target / (mean + eps))).astype(np.float32)


def random_rescale_crop(patch, rng, *, patch_size, scale_range, interpolation):
    """§1.2: resize the square patch to round(n*s), s ~ U(range), then a random patch_size crop."""
    n = patch.shape[0]
    s = rng.uniform(float(scale_range[0]), float(scale_range[1]))
    size = max(int(round(n * s)), patch_size)
    scaled = resize(patch, size, size, interpolation)
    if size == patch_size:
        return scaled
    # The reference draws randint(0, S - 256): the upper bound is exclusive.
    y0, x0 = rng.integers(0, size - patch_size, 2)
    return scaled[y0:y0 + patch_size, x0:x0 + patch_size]


def random_rotate_flip(arrays, rng, *, rot90=True, flip_rows=True, flip_cols=True):
    """§1.2: rot90 by k ~ U{0..3}, flip rows p=.5, flip columns p=.5; same draw for every array."""
    k = int(rng.integers(0, 4)) if rot90 else 0
    fr = bool(rng.random() < 0.5) if flip_rows else False
    fc = bool(rng.random() < 0.5) if flip_cols else False
    out = []
    for a in arrays:
        a = np.rot90(a, k)
        if fr:
            a = a[::-1]
        if fc:
            a = a[:, ::-1]
        out.append(np.ascontiguousarray(a))
    return out
