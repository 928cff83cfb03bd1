"""hdrjax's cache folder: JAX's persistent compilation cache and measured receptive fields.

Location: `$HDRJAX_CACHE_DIR`, else `$XDG_CACHE_HOME/hdrjax`, else `~/.cache/hdrjax`. Everything
in it is derived (compiled XLA programs keyed by JAX on program, shapes, jax version and
device; receptive-field measurements keyed by a hash of the weights), so the folder is safe
to delete at any time: the next run recompiles and re-measures.
"""
from __future__ import annotations

import json
import logging
import os
import pathlib

logger = logging.getLogger("hdrjax.cache")

COMPILATION_SUBDIR = "jax-compilation"


def cache_dir() -> pathlib.Path:
    """The cache folder (not created here)."""
    env = os.environ.get("HDRJAX_CACHE_DIR")
    if env:
        return pathlib.Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = pathlib.Path(xdg).expanduser() if xdg else pathlib.Path.home() / ".cache"
    return base / "hdrjax"


def read_json(path: pathlib.Path) -> dict:
    """A cached JSON object, or {} when the file is absent or unreadable (a cache never fails a run)."""
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write_json(path: pathlib.Path, data: dict) -> None:
    """Write atomically; a cache that cannot be written is skipped with a log line."""
    from hdrjax.io import atomic_write

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "w") as f:
            json.dump(data, f)
    except OSError as e:
        logger.info(f"{path}: cache not written ({e.strerror or e})")


def enable_compilation_cache(path: str | os.PathLike | None = None) -> pathlib.Path | None:
    """Keep JAX's compiled programs on disk so the next run of the same shapes skips compiling.

    Every program is cached (no minimum compile time: on a CPU the stage functions compile in
    about a second each, which is most of a small photo's latency). Returns the folder, or
    None (with a log line) when it cannot be created.
    """
    import jax

    folder = pathlib.Path(path).expanduser() if path else cache_dir() / COMPILATION_SUBDIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        logger.info(f"{folder}: compilation cache disabled ({e.strerror or e})")
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder
