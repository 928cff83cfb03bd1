"""Line charts and image grids drawn with Pillow, for the evaluation's figures.

matplotlib is not a dependency of hdrjax: `line_plot` draws axes, ticks, lines and a legend
itself; `hstack` puts images side by side.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Distinct colours (Okabe–Ito, colour-blind safe) then greys.
PALETTE = ((0, 0, 0), (230, 159, 0), (86, 180, 233), (0, 158, 115), (213, 94, 0), (0, 114, 178),
           (204, 121, 167), (240, 228, 66), (120, 120, 120), (170, 170, 170), (90, 60, 30), (60, 90, 160))


def font(size: int = 12):
    """Pillow's default font at `size` (one bitmap size before Pillow 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not np.isfinite(lo) or not np.isfinite(hi):
        return []
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, n - 1)
    mag = 10 ** np.floor(np.log10(raw))
    step = min((s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw), default=raw)
    start = np.ceil(lo / step - 1e-9) * step
    return [float(v) for v in np.arange(start, hi + step * 1e-6, step)]


def _fmt(v: float) -> str:
    v = 0.0 if abs(v) < 1e-12 else v  # no "-0" tick
    return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.2e}"


def line_plot(series: dict[str, tuple[Sequence[float], Sequence[float]]], *, title: str = "", xlabel: str = "",
              ylabel: str = "", size=(640, 420), styles: dict[str, dict] | None = None,
              xlim=None, ylim=None, legend: bool = True) -> Image.Image:
    """A simple line chart with Pillow: {name: (xs, ys)} -> RGB image (axes, ticks, legend).

    Points with non-finite y are skipped (a gap in the line). `styles[name]` may set "color"
    (RGB tuple), "width" and "marker" (bool).
    """
    styles = styles or {}
    w, h = size
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    title_font, small = font(13), font(12)
    xs_all = [float(x) for xs, _ in series.values() for x in xs]
    ys_all = [float(y) for _, ys in series.values() for y in ys if np.isfinite(y)]
    x0, x1 = xlim or ((min(xs_all), max(xs_all)) if xs_all else (0.0, 1.0))
    y0, y1 = ylim or ((min(ys_all), max(ys_all)) if ys_all else (0.0, 1.0))
    if x1 <= x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    if y1 <= y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    if ylim is None:  # a little head room
        pad = 0.05 * (y1 - y0)
        y0, y1 = y0 - pad, y1 + pad
    left, right, top, bottom = 62, 12, 30 if title else 12, 44
    legend_w = 0
    if legend and series:
        legend_w = max(d.textbbox((0, 0), n, font=small)[2] for n in series) + 34
        right += legend_w
    pw, ph = w - left - right, h - top - bottom

    def px(x):
        return left + (x - x0) / (x1 - x0) * pw

    def py(y):
        return top + (1.0 - (y - y0) / (y1 - y0)) * ph

    if title:
        tw = d.textbbox((0, 0), title, font=title_font)[2]
        d.text((left + (pw - tw) / 2, 8), title, fill="black", font=title_font)
    for t in _nice_ticks(y0, y1):
        d.line([(left, py(t)), (left + pw, py(t))], fill=(230, 230, 230))
        label = _fmt(t)
        lw = d.textbbox((0, 0), label, font=small)[2]
        d.text((left - lw - 6, py(t) - 6), label, fill="black", font=small)
    for t in _nice_ticks(x0, x1):
        d.line([(px(t), top + ph), (px(t), top + ph + 4)], fill="black")
        label = _fmt(t)
        lw = d.textbbox((0, 0), label, font=small)[2]
        d.text((px(t) - lw / 2, top + ph + 6), label, fill="black", font=small)
    d.rectangle([left, top, left + pw, top + ph], outline="black")
    if xlabel:
        tw = d.textbbox((0, 0), xlabel, font=small)[2]
        d.text((left + (pw - tw) / 2, h - 18), xlabel, fill="black", font=small)
    if ylabel:
        label = Image.new("RGB", (d.textbbox((0, 0), ylabel, font=small)[2] + 4, 14), "white")
        ImageDraw.Draw(label).text((2, 0), ylabel, fill="black", font=small)
        label = label.rotate(90, expand=True)
        img.paste(label, (4, int(top + (ph - label.height) / 2)))
    for k, (name, (xs, ys)) in enumerate(series.items()):
        st = styles.get(name, {})
        color = tuple(st.get("color", PALETTE[k % len(PALETTE)]))
        width = int(st.get("width", 2))
        pts = [(px(float(x)), py(float(y))) for x, y in zip(xs, ys) if np.isfinite(y)]
        # Split at gaps (non-finite y) so a missing exposure is not bridged.
        run: list[tuple[float, float]] = []
        for x, y in zip(xs, ys):
            if np.isfinite(y):
                run.append((px(float(x)), py(float(y))))
            else:
                if len(run) > 1:
                    d.line(run, fill=color, width=width)
                run = []
        if len(run) > 1:
            d.line(run, fill=color, width=width)
        if st.get("marker", len(pts) <= 16):
            for x, y in pts:
                d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=color)
        if legend:
            ly = top + 6 + 16 * k
            lx = w - legend_w + 4
            d.line([(lx, ly + 6), (lx + 22, ly + 6)], fill=color, width=width)
            d.text((lx + 27, ly), name, fill="black", font=small)
    return img


def hstack(images: Sequence[Image.Image], gap: int = 8) -> Image.Image:
    """Images side by side on white (top-aligned)."""
    w = sum(i.width for i in images) + gap * (len(images) - 1)
    h = max(i.height for i in images)
    out = Image.new("RGB", (w, h), "white")
    x = 0
    for i in images:
        out.paste(i, (x, 0))
        x += i.width + gap
    return out
