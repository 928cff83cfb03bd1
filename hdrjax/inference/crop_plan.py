"""Where the Hallucination-Net is needed, and the few crops that cover it.

The Hallucination-Net's output is used only through the blend A = B + α·relu(r)
(`hdrjax.models.hallucination.highlight_blend`): α = 0 wherever the brightest channel of the linear image B is at most
1 − threshold (0.88), so there A = B whatever the network says. On a typical photograph a few
percent of the pixels have α > 0, but one pass of the network over the whole image is most of
the model's arithmetic (the share is measured in experiments/results/benchmark-cpu-2core.json). This module plans crops that contain every lit pixel (α > 0) with
`context` pixels of real image around it — the distance beyond which the network's output at a
pixel no longer depends on the input (measured per weights, `hdrjax.inference.receptive_field`) — so the
network run on the crops gives the one-pass result at every lit pixel.

Everything is planned on a grid of CELL = 32-pixel cells, the network's deepest pooling: a
crop whose origin is a multiple of 32 sees the pooling grid of the whole image, so the only
difference from a one-pass run is the missing context beyond the crop, which `context` bounds.

Pure numpy; `hdrjax.predict` runs the network on the plan.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

CELL = 32  # the Hallucination-Net's five 2× poolings: crops start and end on this grid
# Crop sides (in cells) a plan rounds up to, so photographs of different sizes share compiled
# programs: steps of one cell up to 12, then about ×1.1–1.2 apart. Coarser steps (×1.25) would
# cost more Hallucination-Net work for fewer programs to compile.
BUCKETS = (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 18, 20, 22, 24, 28, 32, 36, 40, 44, 48, 56, 64,
           72, 80, 96, 112, 128, 144, 160, 192, 224, 256)


@dataclasses.dataclass(frozen=True)
class Crop:
    """One network call's input window, in pixels of the ALIGN-padded image (multiples of CELL)."""

    y: int
    x: int
    h: int
    w: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.h, self.w)

    @property
    def area(self) -> int:
        return self.h * self.w


@dataclasses.dataclass(frozen=True)
class RegionPlan:
    """Crops, and for every lit cell the crop that computes it.

    owner: i32[Hc, Wc], the index into `crops` of the crop whose result is used for that cell
    (−1: no lit pixel, the network's output is not used there). Every owned cell lies at least
    `context` pixels (rounded up to whole cells) inside its crop, or at the image border.
    """

    crops: tuple[Crop, ...]
    owner: np.ndarray
    context: int
    image_cells: tuple[int, int]

    @property
    def crop_pixels(self) -> int:
        return sum(c.area for c in self.crops)

    @property
    def image_pixels(self) -> int:
        return self.image_cells[0] * self.image_cells[1] * CELL * CELL

    @property
    def work_fraction(self) -> float:
        """Pixels the network runs on, as a fraction of one pass over the (padded) image."""
        return self.crop_pixels / self.image_pixels


def lit_cells(alpha_positive: np.ndarray) -> np.ndarray:
    """bool[Hc, Wc]: cells of a padded bool[H, W] mask (H, W multiples of CELL) with any True."""
    h, w = alpha_positive.shape
    if h % CELL or w % CELL:
        raise ValueError(f"lit_cells: mask shape {alpha_positive.shape} is not a multiple of {CELL}")
    return alpha_positive.reshape(h // CELL, CELL, w // CELL, CELL).any(axis=(1, 3))


def bucket(n: int, limit: int) -> int:
    """The smallest bucket side >= n cells, but never more than `limit` (the image's side)."""
    for b in BUCKETS:
        if b >= n:
            return min(b, limit)
    return min(limit, _round_up(n, BUCKETS[-1] // 4))


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    return labels, n


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    from scipy import ndimage

    if r <= 0:
        return mask.copy()
    return ndimage.binary_dilation(mask, structure=np.ones((2 * r + 1, 2 * r + 1), bool))


def _bucketed(box: tuple[int, int, int, int], hc: int, wc: int, max_side: int) -> tuple[int, int, int, int]:
    """Grow a cell box (y0, x0, y1, x1) to bucket sides (at most max_side), centred, in the image."""
    y0, x0, y1, x1 = box
    bh = max(y1 - y0, bucket(y1 - y0, min(hc, max_side)))
    bw = max(x1 - x0, bucket(x1 - x0, min(wc, max_side)))
    ny0 = min(max(0, y0 - (bh - (y1 - y0)) // 2), hc - bh)
    nx0 = min(max(0, x0 - (bw - (x1 - x0)) // 2), wc - bw)
    return ny0, nx0, ny0 + bh, nx0 + bw


def _area(box) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def _union(a, b):
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _split(core, r: int, max_side: int) -> list[tuple]:
    """Cut a lit core box into equal pieces whose boxes grown by r are at most max_side cells."""
    y0, x0, y1, x1 = core
    step = max_side - 2 * r
    if step < 1:
        raise ValueError(f"a crop of {max_side} cells cannot hold {r} cells of context on both sides")
    ny, nx = -(-(y1 - y0) // step), -(-(x1 - x0) // step)
    sy, sx = -(-(y1 - y0) // ny), -(-(x1 - x0) // nx)  # equal pieces: one compiled shape
    return [
        (ys, xs, min(y1, ys + sy), min(x1, xs + sx))
        for ys in range(y0, y1, sy)
        for xs in range(x0, x1, sx)
    ]


def needed_cells(lit_pixels: np.ndarray, context: int) -> np.ndarray:
    """bool[Hc, Wc]: cells holding a pixel within `context` px (Chebyshev) of a lit pixel.

    Crops are axis-aligned boxes, so a pixel's distance to a crop edge is a Chebyshev
    distance: a square dilation, computed as two 1-D maximum filters (linear in the image).
    """
    from scipy import ndimage

    grown = lit_pixels.astype(np.uint8)
    if context > 0:
        size = 2 * context + 1
        grown = ndimage.maximum_filter1d(grown, size, axis=0, mode="constant")
        grown = ndimage.maximum_filter1d(grown, size, axis=1, mode="constant")
    return lit_cells(grown > 0)


GROUP_SIDES = (None, 32, 24, 16, 12, 10, 8, 6)  # cells: lit cells of a region grouped in blocks of this side


def _cheapest_cover(ys: np.ndarray, xs: np.ndarray, k: int, region_box: tuple, r: int, hc: int, wc: int,
                    max_side: int) -> list[tuple[tuple, list]]:
    """Crops for one region's lit cells (ys, xs): one box, or one per block of lit cells.

    A single bounding box wastes work on an L-shaped or diagonal region; a box per block of
    G×G cells pays the context again around every block. Each candidate's box is the block's
    lit cells grown by r cells, cut to the region's needed box (the block's needs lie in both);
    the candidate with the fewest bucketed pixels wins.
    """
    best = None
    for g in GROUP_SIDES:
        if g is None:
            core = (int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1)
            jobs = [(_bucketed(region_box, hc, wc, max_side), [(core, k)])]
        else:
            jobs = []
            keys = (ys // g) * (wc // g + 1) + xs // g
            for key in np.unique(keys):
                gy, gx = ys[keys == key], xs[keys == key]
                core = (int(gy.min()), int(gx.min()), int(gy.max()) + 1, int(gx.max()) + 1)
                box = (max(core[0] - r, region_box[0]), max(core[1] - r, region_box[1]),
                       min(core[2] + r, region_box[2]), min(core[3] + r, region_box[3]))
                jobs.append((_bucketed(box, hc, wc, max_side), [(core, k)]))
        cost = sum(_area(b) for b, _ in jobs)
        if best is None or cost < best[0]:
            best = (cost, jobs)
    return best[1]


def plan(lit: np.ndarray, context: int, *, need: np.ndarray | None = None, max_side: int | None = None,
         whole_image_above: float = 0.9) -> RegionPlan:
    """Crops covering every lit cell of `lit` (bool[Hc, Wc]) with `context` pixels around it.

    need: the cells a crop must include around the lit ones (`needed_cells`, pixel-exact);
    default: lit cells grown by whole cells (ceil(context / 32)), which is never less.

    1. Lit cells whose needed surroundings touch are one region: connected components of
       `need`.
    2. Each region's box is the bounding box of its needed cells;
       a box wider than `max_side` cells (the memory budget) is cut into pieces that each own
       part of the region's cells and keep the full context.
    3. Boxes are rounded up to bucket sides (more context, never less) and two boxes are merged
       when their union costs no more than both.
    4. When the crops would cost more than `whole_image_above` of one pass over the image (a
       photograph that is mostly sky), the plan is one crop of the whole image, if it fits
       `max_side`: never more work than one pass.
    """
    hc, wc = lit.shape
    owner = np.full((hc, wc), -1, np.int32)
    if not lit.any():
        return RegionPlan((), owner, context, (hc, wc))
    r = math.ceil(context / CELL)
    max_side = max_side or max(hc, wc)
    if need is None:
        need = _dilate(lit, r)
    need = need | lit
    labels, n = _components(need)
    # (box, core) pairs: the crop's cell box and the lit-cell box it owns.
    jobs: list[tuple[tuple, tuple]] = []
    for k in range(1, n + 1):
        ys, xs = np.nonzero(lit & (labels == k))
        if not len(ys):
            continue
        core = (int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1)
        ny, nx = np.nonzero(labels == k)
        region_box = (int(ny.min()), int(nx.min()), int(ny.max()) + 1, int(nx.max()) + 1)
        if max(region_box[2] - region_box[0], region_box[3] - region_box[1]) <= max_side:
            jobs.extend(_cheapest_cover(ys, xs, k, region_box, r, hc, wc, max_side))
            continue
        for piece in _split(core, r, max_side):
            py, px = np.nonzero(lit[piece[0] : piece[2], piece[1] : piece[3]] & (labels[piece[0] : piece[2], piece[1] : piece[3]] == k))
            if not len(py):
                continue
            piece = (piece[0] + int(py.min()), piece[1] + int(px.min()), piece[0] + int(py.max()) + 1, piece[1] + int(px.max()) + 1)
            box = (max(0, piece[0] - r), max(0, piece[1] - r), min(hc, piece[2] + r), min(wc, piece[3] + r))
            jobs.append((_bucketed(box, hc, wc, max_side), [(piece, k)]))
    # Greedy merging: join the pair whose union saves the most work, while any pair saves some.
    merged = True
    while merged and len(jobs) > 1:
        merged = False
        best = None
        for i in range(len(jobs)):
            for j in range(i + 1, len(jobs)):
                a, b = jobs[i][0], jobs[j][0]
                if a[0] >= b[2] or b[0] >= a[2] or a[1] >= b[3] or b[1] >= a[3]:
                    continue  # disjoint boxes: their union always costs more than both
                u = _union(a, b)
                if max(u[2] - u[0], u[3] - u[1]) > max_side:
                    continue
                ub = _bucketed(u, hc, wc, max_side)
                saving = _area(jobs[i][0]) + _area(jobs[j][0]) - _area(ub)
                if saving >= 0 and (best is None or saving > best[0]):
                    best = (saving, i, j, ub)
        if best is not None:
            _, i, j, ub = best
            jobs[i] = (ub, jobs[i][1] + jobs[j][1])
            del jobs[j]
            merged = True
    total = sum(_area(b) for b, _ in jobs)
    if total > whole_image_above * hc * wc and max(hc, wc) <= max_side:
        jobs = [((0, 0, hc, wc), [((0, 0, hc, wc), None)])]
    crops = []
    for index, (box, cores) in enumerate(jobs):
        crops.append(Crop(box[0] * CELL, box[1] * CELL, (box[2] - box[0]) * CELL, (box[3] - box[1]) * CELL))
        for core, k in cores:
            sl = (slice(core[0], core[2]), slice(core[1], core[3]))
            mine = lit[sl] if k is None else lit[sl] & (labels[sl] == k)
            # A cell owned twice (pieces of one region) keeps its first owner: both are exact.
            owner[sl][mine & (owner[sl] < 0)] = index
    return RegionPlan(tuple(crops), owner, context, (hc, wc))
