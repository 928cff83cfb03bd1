"""Atomic file writes: a failure or a kill leaves no partial file and never clobbers an old one.

Both context managers write to a temporary name in the target's folder (a dot name, so folder
globs such as `*.png` never pick up a half-written file), fsync it, then `os.replace` it over
the target and fsync the folder. `atomic_write` yields an open file object (checkpoint
metadata, CSVs, JSON); `atomic_path` yields the temporary path itself, keeping the extension,
for libraries that want a file name (OpenCV, OpenEXR, Matplotlib).
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import secrets
import shutil


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", **open_kwargs):
    """Yield a file object on a temp file beside `path`; rename it over `path` on success."""
    if mode not in ("w", "wb", "wt"):
        raise ValueError(f"{os.fspath(path)}: atomic_write supports modes w, wt, wb, not {mode!r}")
    target = pathlib.Path(os.fspath(path))
    tmp, fd = _create_temp(target, keep_suffix=False)
    try:
        f = os.fdopen(fd, mode, **open_kwargs)
    except BaseException:
        os.close(fd)
        _remove(tmp)
        raise
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temp path (same folder and extension) that is renamed over `path` on success."""
    target = pathlib.Path(os.fspath(path))
    tmp, fd = _create_temp(target, keep_suffix=True)
    # The name is reserved; the caller's library creates the file itself (or a directory).
    os.close(fd)
    os.unlink(tmp)
    try:
        yield str(tmp)
        if not os.path.lexists(tmp):
            raise FileNotFoundError(f"{target}: nothing was written to the temporary path {tmp}")
        if os.path.isfile(tmp):
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(target.parent)


def _create_temp(target: pathlib.Path, keep_suffix: bool):
    folder = target.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"{target}: folder {folder} does not exist")
    # Libraries such as OpenCV choose the format from the extension, so keep it last.
    suffix = target.suffix if keep_suffix else ""
    for _ in range(100):
        # A dot name so folder globs (`*.png`) never pick up a half-written file.
        tmp = folder / f".{target.name}.{secrets.token_hex(6)}.tmp{suffix}"
        try:
            # O_EXCL: never reuse a name; mode 0o666 lets the umask decide, like open().
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        return tmp, fd
    raise FileExistsError(f"{target}: could not create a temporary file in {folder}")


def _remove(tmp: pathlib.Path) -> None:
    try:
        if os.path.isdir(tmp) and not os.path.islink(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.unlink(tmp)
    except FileNotFoundError:
        pass


def _fsync_dir(folder: pathlib.Path) -> None:
    # Makes the rename itself durable; not possible on every platform / file system.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
