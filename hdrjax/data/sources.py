"""File lists of the file-based datasets and random-access sources of decoded images.

hdr_synth: the reference's 503/60 HDR-Synth lists (embedded, lists/), relative to manual_dir.
hdr_real:  <manual_dir>/<split dir>/HDR_gt/*.hdr + LDR_in/*.jpg, paired by sorted index (§3.4).
hdr_folder: every .hdr/.exr in manual_dir, split by a seeded fraction or explicit test names.
"""
from __future__ import annotations

import collections
import importlib.resources
import os
import pathlib
import threading

import numpy as np

from hdrjax.data.config import DataError
from hdrjax.data.transforms import resize_short_side

SYNTH_LISTS = {"train": "i_dataset_train.txt", "test": "i_dataset_test.txt"}


def _io():
    # Imported lazily: hdrjax.io is a sibling module and only needed when files are read.
    from hdrjax import io
    return io


def hdr_synth_list(split: str) -> list[str]:
    """The reference's HDR-Synth list for `split` (503 train / 60 test relative paths)."""
    if split not in SYNTH_LISTS:
        raise DataError(f"hdr_synth has splits {sorted(SYNTH_LISTS)}, not {split!r}")
    resource = importlib.resources.files("hdrjax.data").joinpath("lists", SYNTH_LISTS[split])
    try:
        text = resource.read_text("utf-8")
    except FileNotFoundError as e:
        raise DataError(f"{resource}: the embedded HDR-Synth list is missing from this "
                        "installation (hdrjax/data/lists/*.txt must be package data)") from e
    return [line.strip() for line in text.splitlines() if line.strip()]


def _require_dir(path, what):
    path = pathlib.Path(os.path.expanduser(str(path)))
    if not str(path) or not path.is_dir():
        raise DataError(f"{path}: {what} does not exist or is not a folder")
    return path


def hdr_synth_files(manual_dir, split: str) -> list[pathlib.Path]:
    """Absolute paths of the HDR-Synth `split` files under `manual_dir` (all must exist)."""
    root = _require_dir(manual_dir, "hdr_synth manual_dir (the reference's --hdr_prefix)")
    paths = [root / rel for rel in hdr_synth_list(split)]
    missing = [str(p.relative_to(root)) for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"{root}: {len(missing)} of the {len(paths)} hdr_synth {split} images are "
                        f"missing, e.g. {', '.join(missing[:3])}")
    return paths


def list_hdr_files(folder) -> list[pathlib.Path]:
    """Sorted .hdr/.exr files directly in `folder` (by name)."""
    folder = _require_dir(folder, "HDR folder")
    exts = tuple(e.lower() for e in _io().HDR_EXTENSIONS)
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts),
                  key=lambda p: p.name)


def hdr_folder_split(folder, *, test_fraction=0.1, test_names=(), seed=0) -> dict:
    """{"train": paths, "test": paths} for a folder of HDR files (a seeded or explicit split)."""
    files = list_hdr_files(folder)
    if not files:
        raise DataError(f"{folder}: no .hdr/.exr files in the folder")
    if test_names:
        by_name = {}
        for p in files:
            by_name[p.name] = by_name[p.stem] = p
        unknown = [n for n in test_names if n not in by_name]
        if unknown:
            raise DataError(f"{folder}: config.data.split.test_names lists files that are not "
                            f"there: {', '.join(unknown[:5])}")
        test = {by_name[n] for n in test_names}
    else:
        n_test = int(round(test_fraction * len(files)))
        if test_fraction > 0:
            n_test = max(1, n_test)
        order = np.random.default_rng(seed).permutation(len(files))
        test = {files[i] for i in order[:n_test]}
    train = [p for p in files if p not in test]
    if not train:
        raise DataError(f"{folder}: too few images ({len(files)}) for the split: "
                        f"{len(test)} test leave none for training")
    return {"train": train, "test": [p for p in files if p in test]}


def hdr_real_pairs(split_dir, *, match_names=True) -> list[tuple[pathlib.Path, pathlib.Path]]:
    """(HDR_gt/x.hdr, LDR_in/x.jpg) pairs in `split_dir`, matched by sorted index (§3.4)."""
    split_dir = _require_dir(split_dir, "hdr_real split folder")
    io = _io()
    hdr_dir = _require_dir(split_dir / "HDR_gt", "hdr_real HDR_gt folder")
    ldr_dir = _require_dir(split_dir / "LDR_in", "hdr_real LDR_in folder")
    hdr_exts = tuple(e.lower() for e in io.HDR_EXTENSIONS)
    ldr_exts = tuple(e.lower() for e in io.LDR_EXTENSIONS)
    hdrs = sorted(p for p in hdr_dir.iterdir() if p.suffix.lower() in hdr_exts)
    ldrs = sorted(p for p in ldr_dir.iterdir() if p.suffix.lower() in ldr_exts)
    if not hdrs:
        raise DataError(f"{hdr_dir}: no HDR files")
    if len(hdrs) != len(ldrs):
        raise DataError(f"{split_dir}: {len(hdrs)} files in HDR_gt but {len(ldrs)} in LDR_in; "
                        "pairs are matched by sorted index")
    if match_names:
        for h, ld in zip(hdrs, ldrs):
            if h.stem != ld.stem:
                raise DataError(f"{split_dir}: pair {h.name} / {ld.name} has different names "
                                "(set config.data.real.match_names=False to pair by sorted index "
                                "only, as the reference)")
    return list(zip(hdrs, ldrs))


def load_hdr(path, short_side: int, interpolation: str) -> np.ndarray:
    """Read an HDR file and resize its shorter side to `short_side` (0 = keep its size)."""
    image = _io().read_image(path)
    if short_side:
        image = resize_short_side(image, short_side, interpolation)
    return np.ascontiguousarray(image, np.float32)


def load_pair(hdr_path, ldr_path) -> dict:
    """Read an HDR-Real pair at full resolution: hdr f32, ldr u8 (same height and width)."""
    io = _io()
    hdr = np.ascontiguousarray(io.read_image(hdr_path), np.float32)
    ldr = io.read_image(ldr_path)
    if hdr.shape[:2] != ldr.shape[:2]:
        raise DataError(f"{hdr_path}: HDR is {hdr.shape[1]}x{hdr.shape[0]} but its LDR "
                        f"{ldr_path} is {ldr.shape[1]}x{ldr.shape[0]}")
    # read_image scales 8-bit files by 1/255, so this recovers the stored bytes exactly.
    ldr = np.clip(np.round(ldr * 255.0), 0, 255).astype(np.uint8)
    return {"hdr": hdr, "ldr": ldr, "name": pathlib.Path(hdr_path).stem}


def entry_name(path, root=None) -> str:
    """A record's name: the file stem, or its path below `root` without the extension."""
    path = pathlib.Path(path)
    if root is None:
        return path.stem
    return path.relative_to(root).with_suffix("").as_posix()


class FileSource:
    """Random-access source over image files: record i = {"hdr", "name"[, "ldr"]}, decoded.

    `entries` are HDR paths (or (hdr, ldr) pairs with `pairs`); names are relative to `root`
    when given (hdr_synth, whose stems are not unique), else file stems.
    """

    def __init__(self, entries, *, short_side=0, interpolation="area", pairs=False, root=None):
        self.entries = list(entries)
        self.short_side, self.interpolation, self.pairs = short_side, interpolation, pairs
        self.root = root

    def __len__(self):
        return len(self.entries)

    def __getitem__(self, i):
        entry = self.entries[i]
        if self.pairs:
            return load_pair(*entry)
        return {"hdr": load_hdr(entry, self.short_side, self.interpolation),
                "name": entry_name(entry, self.root)}


class CachedSource:
    """LRU cache of decoded records in front of a random-access source (thread-safe, picklable)."""

    def __init__(self, source, capacity: int):
        self.source, self.capacity = source, int(capacity)
        self._init()

    def _init(self):
        self._cache = collections.OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self):
        # Worker processes start with an empty cache (and a fresh lock).
        return {"source": self.source, "capacity": self.capacity}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._init()

    def __len__(self):
        return len(self.source)

    def __getitem__(self, i):
        i = int(i)
        with self._lock:
            if i in self._cache:
                self._cache.move_to_end(i)
                return self._cache[i]
        record = _normalize_record(self.source[i])
        if self.capacity > 0:
            with self._lock:
                self._cache[i] = record
                while len(self._cache) > self.capacity:
                    self._cache.popitem(last=False)
        return record


def _normalize_record(record) -> dict:
    # TFDS returns Text features as bytes; callers get str names and read-only arrays (cached
    # records are shared between elements, so nobody may modify them in place).
    out = {}
    for key, value in record.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        elif isinstance(value, np.ndarray):
            value = np.asarray(value)
            value.flags.writeable = False
        out[key] = value
    return out
