"""Reading OpenEXR pixels: pick the channels, decode them with the library, make RGB.

Uses the official `openexr` bindings (`OpenEXR.File`) after `hdrjax.io.exr_check` has
validated the file's structure. Values are linear relative radiance, stored values unscaled.

* half, float and uint channels; scan-line and tiled parts (level 0 of mip/rip maps).
* RGB(A): alpha is dropped and RGB kept as stored. EXR colour is premultiplied (associated)
  by convention, so RGB already is the light the pixel emits; dividing by A would be wrong,
  and pixels with A == 0 and RGB != 0 (glows, e.g. CandleGlass.exr) are valid additive light.
* luminance/chroma (Y, RY, BY): converted to RGB as OpenEXR's `RgbaInputFile` does
  (`hdrjax.io.exr_yca`).
* Y alone (greyscale): R = G = B = Y.
* multi-part and layered files: the first part's unprefixed R, G, B (or Y) channels; anything
  else is an `ImageReadError` naming the channels found. Deep data is refused.
* The pixel window returned is the data window (the display window is not applied).

By default the library decodes in this process. With `safe=True` (`read_image(...,
safe_exr=True)`) or the environment variable `HDRJAX_SAFE_EXR=1` the decode runs in a child
process with a timeout (`HDRJAX_SAFE_EXR_TIMEOUT`, seconds, default 120), so a crash or a
hang in the library becomes an `ImageReadError` too; it costs one Python start-up per file
(about 0.2 s).
"""
from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import tempfile

import numpy as np

from hdrjax.io.common import ImageReadError
from hdrjax.io.exr_check import ExrPart, parse_exr
from hdrjax.io.exr_yca import luminance_weights, yca_to_rgb

_SAFE_EXR_ENV = "HDRJAX_SAFE_EXR"
_SAFE_EXR_TIMEOUT_ENV = "HDRJAX_SAFE_EXR_TIMEOUT"
_SAFE_EXR_DEFAULT_TIMEOUT = 120.0

# What the pybind11-based bindings raise on data they cannot decode: pybind11 turns C++
# std::exception (and Iex errors) into RuntimeError, invalid_argument / domain_error /
# length_error into ValueError, out_of_range into IndexError, overflow_error into
# OverflowError. MemoryError (bad_alloc) is left to read_image.
_LIBRARY_ERRORS = (RuntimeError, ValueError, IndexError, OverflowError)


def _select_channels(path: str, part: ExrPart) -> tuple[str, list[str]]:
    """Which channels of the first part give the picture: ("rgb", [R, G, B]) or ("yc", [...])."""
    info = {c[0]: c for c in part.channels}
    found = ", ".join(sorted(info)) or "none"
    rgb = [c for c in ("R", "G", "B") if c in info]
    if rgb:
        if len(rgb) != 3:
            raise ImageReadError(path, f"OpenEXR file has channel(s) {', '.join(rgb)} but not all "
                                       f"of R, G, B (channels: {found})")
        for c in rgb:
            if info[c][2:] != (1, 1):
                raise ImageReadError(path, f"OpenEXR channel {c} is subsampled "
                                           f"{info[c][2]} x {info[c][3]}; not supported")
        return "rgb", rgb
    if "Y" in info:
        if info["Y"][2:] != (1, 1):
            raise ImageReadError(path, "OpenEXR luminance channel Y is subsampled; not supported")
        chroma = [c for c in ("RY", "BY") if c in info]
        if len(chroma) == 1:
            raise ImageReadError(path, f"OpenEXR file has {chroma[0]} without "
                                       f"{'BY' if chroma[0] == 'RY' else 'RY'}")
        if chroma:
            samplings = {info[c][2:] for c in chroma}
            if samplings not in ({(1, 1)}, {(2, 2)}):
                raise ImageReadError(path, f"OpenEXR chroma sampling {sorted(samplings)} is not "
                                           "supported (only 1 x 1 or 2 x 2)")
        for c in ["Y"] + chroma:
            if info[c][1] == 0:
                raise ImageReadError(path, f"OpenEXR luminance/chroma channel {c} is uint")
        return "yc", ["Y"] + chroma
    where = " in its first part" if part.name is not None else ""
    raise ImageReadError(path, f"OpenEXR file has no R, G, B or Y channels{where} "
                               f"(channels: {found}); layered files need unprefixed RGB")


def _library_read(path: str, names: list[str], part_name: str | None) -> dict[str, np.ndarray]:
    """Decode the first part with the OpenEXR bindings; return the wanted channels' arrays."""
    import OpenEXR

    f = OpenEXR.File(path, separate_channels=True)
    # The bindings drop a part whose pixels fail to decode (printing a warning on stderr)
    # instead of raising, so part 0 of what they return may be missing or another part.
    try:
        header = f.header(0)
        channels = f.channels(0)
    except (ValueError, IndexError):
        raise RuntimeError("the pixel data could not be decoded") from None
    if part_name is not None and header.get("name") != part_name:
        raise RuntimeError("the first part's pixel data could not be decoded")
    out = {}
    for name in names:
        if name not in channels or channels[name].pixels is None:
            raise RuntimeError(f"channel {name} could not be decoded")
        out[name] = np.asarray(channels[name].pixels)
    return out


def worker_main() -> None:
    """Child-process entry point of the safe EXR read: argv = path, out.npz, part name, names."""
    path, out, part_name, *names = sys.argv[1:]
    arrays = _library_read(path, names, part_name or None)
    np.savez(out, *[arrays[n] for n in names])


def _subprocess_read(path, names, part_name, timeout):
    package_parent = str(pathlib.Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([package_parent] + [p for p in [env.get("PYTHONPATH")] if p])
    with tempfile.TemporaryDirectory(prefix="hdrjax-exr-") as tmp:
        out = os.path.join(tmp, "pixels.npz")
        cmd = [sys.executable, "-c", "from hdrjax.io.exr import worker_main; worker_main()",
               path, out, part_name or "", *names]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ImageReadError(path, f"OpenEXR decoder did not finish within {timeout:g} s "
                                       "(corrupt file?)") from None
        if proc.returncode < 0:
            try:
                sig = signal.Signals(-proc.returncode).name
            except ValueError:
                sig = f"signal {-proc.returncode}"
            raise ImageReadError(path, f"OpenEXR decoder crashed ({sig}): corrupt file")
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
            # The library's own diagnosis ("(EXR_ERR_...) ...") beats the traceback's last line.
            library = [ln.split(": (EXR_ERR", 1)[-1] for ln in lines if "(EXR_ERR" in ln]
            detail = ("(EXR_ERR" + library[0]) if library else (lines[-1] if lines else "decoder failed")
            raise ImageReadError(path, f"corrupt OpenEXR data ({detail})")
        with np.load(out) as z:
            return {name: z[f"arr_{i}"] for i, name in enumerate(names)}


def read_exr(path: str, *, safe: bool | None = None) -> np.ndarray:
    """Validate, decode and convert an OpenEXR file to float32 RGB [H, W, 3].

    `safe`: decode in a child process; None lets the environment variable HDRJAX_SAFE_EXR decide.
    """
    parts = parse_exr(path)
    part = parts[0]
    kind, names = _select_channels(path, part)
    if safe is None:
        safe = os.environ.get(_SAFE_EXR_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    if safe:
        timeout = float(os.environ.get(_SAFE_EXR_TIMEOUT_ENV, _SAFE_EXR_DEFAULT_TIMEOUT))
        arrays = _subprocess_read(path, names, part.name, timeout)
    else:
        try:
            arrays = _library_read(path, names, part.name)
        except _LIBRARY_ERRORS as e:
            message = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise ImageReadError(path, f"corrupt OpenEXR data ({message})") from None
    info = {c[0]: c for c in part.channels}
    for name in names:
        _, ptype, xs, ys = info[name]
        want = (part.height // ys, part.width // xs)
        got = arrays[name]
        if got.shape != want:
            raise ImageReadError(path, f"OpenEXR channel {name} decoded to shape {got.shape}, "
                                       f"header says {want}")
    if kind == "rgb":
        image = np.stack([arrays[c].astype(np.float32) for c in names], axis=-1)
    else:
        yw = luminance_weights(path, part.chromaticities)
        half = all(info[c][1] == 1 for c in names)
        y = arrays["Y"].astype(np.float32)
        if len(names) == 1:
            image = np.repeat(y[..., None], 3, axis=-1)
        else:
            image = yca_to_rgb(y, arrays["RY"].astype(np.float32), arrays["BY"].astype(np.float32),
                               yw, subsampled=info["RY"][2] == 2, half=half)
    return image
