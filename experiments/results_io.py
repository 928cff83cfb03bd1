"""The one way experiments write their result files, and what every measurement records.

Every file under experiments/results/ (JSON, markdown, PNG) and every README block is written
through `write_json`, `write_text` or `write_image`: atomically (hdrjax.io: a temporary file
beside the target, then a rename), so a killed run leaves the previous file, never half of
one. JSON is strict (`allow_nan=False`): a non-finite float is stored as null, numpy scalars
and arrays as numbers and lists.
"""
from __future__ import annotations

import json
import math
import os
import pathlib
import platform
import sys
import time


def cpu_model() -> str:
    """The processor's name as Linux reports it ("" elsewhere): machines of one size differ in speed."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        return ""


def machine() -> dict:
    """CPU count and model, platform, jax version and devices of this process (jax imported here)."""
    import jax

    return {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "platform": platform.platform(),
            "jax": jax.__version__, "devices": f"{jax.device_count()} {jax.default_backend()}"}


def command(module: str, argv=None) -> str:
    """The command line that made a result, as a user types it: `python -m <module> <args>`.

    Not sys.argv[0], which is the script's absolute path on the machine that ran it."""
    return " ".join(["python -m " + module, *(sys.argv[1:] if argv is None else argv)])


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def json_default(o):
    """JSON for numpy scalars and arrays, tuples and sets; anything else as its str()."""
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:
        pass
    if isinstance(o, (tuple, set)):
        return list(o)
    return str(o)


def finite(o):
    """A JSON-safe copy: non-finite floats become None (strict JSON has no NaN or Infinity)."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {str(k): finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [finite(v) for v in o]
    return o


def to_json(data, indent: int = 2) -> str:
    """The text `write_json` writes: strict JSON, numpy values converted, a final newline."""
    plain = json.loads(json.dumps(data, default=json_default))  # numpy -> Python, keys -> str
    return json.dumps(finite(plain), indent=indent, allow_nan=False) + "\n"


def write_text(path, text: str) -> pathlib.Path:
    """Write text (UTF-8) atomically, creating the folder; returns the path."""
    from hdrjax.io import atomic_write

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def write_json(path, data, *, indent: int = 2) -> pathlib.Path:
    """Write data as strict, indented JSON, atomically (see `to_json`)."""
    return write_text(path, to_json(data, indent))


def write_image(path, save) -> pathlib.Path:
    """Write an image atomically: `save(temporary_path)` writes it (PIL's `image.save`,
    matplotlib's `figure.savefig`), then it is renamed over `path`."""
    from hdrjax.io import atomic_path

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save(tmp)
    return path
