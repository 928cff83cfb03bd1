"""What every measurement script under experiments/ records and how it writes its result file."""
from __future__ import annotations

import json
import os
import pathlib
import platform
import time


def machine() -> dict:
    """CPU count, platform, jax version and devices of this process (jax imported here)."""
    import jax

    return {"cpus": os.cpu_count(), "platform": platform.platform(), "jax": jax.__version__,
            "devices": f"{jax.device_count()} {jax.default_backend()}"}


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def write(path, data: dict) -> pathlib.Path:
    """Write data as indented JSON, atomically (temporary file + rename), and say where."""
    from hdrjax.io import atomic_write

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")
    return path
