"""TFDS builders (array_record, no TensorFlow needed) for the file-based datasets.

Each builder reads a user's `manual_dir` and writes
`<data_dir>/<name>/<config name>/<version>/<name>-<split>.array_record-*` with TFDS's layout;
`builder.as_data_source(split)` then gives random access without TensorFlow.

- HdrSynth ("hdr_synth"): the reference's HDR-Synth lists (§1.1), images resized so the short
  side is `short_side` (the resize the reference does on load, done once here).
- HdrFolder ("hdr_folder"): any folder of .hdr/.exr with a seeded/explicit split, same resize.
- HdrReal ("hdr_real"): HDR_gt/LDR_in pairs at full resolution (HDR f32, LDR u8).
The config name encodes every parameter that changes the prepared files, so a different
resize or split prepares a new copy instead of reusing a stale one.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import pathlib
import re

import numpy as np
import tensorflow_datasets as tfds

from hdrjax.data import sources
from hdrjax.data.config import DataError

VERSION = "1.0.0"


@dataclasses.dataclass(eq=False)
class HdrConfig(tfds.core.BuilderConfig):
    """Parameters of a prepared copy (see `builder_config`)."""

    short_side: int = 512
    interpolation: str = "area"
    test_fraction: float = 0.1
    test_names: tuple = ()
    split_seed: int = 0
    train_dir: str = "train"
    test_dir: str = "test"
    match_names: bool = True


def _digest(params) -> str:
    return hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]


def builder_config(config) -> HdrConfig:
    """The TFDS BuilderConfig for the `data` ConfigDict `config` (name from its parameters)."""
    resize = dict(short_side=int(config.short_side),
                  interpolation=str(config.resize_interpolation))
    if config.name == "hdr_synth":
        name = f"s{resize['short_side']}_{resize['interpolation']}"
        extra = {}
    elif config.name == "hdr_folder":
        split = dict(test_fraction=float(config.split.test_fraction),
                     test_names=tuple(str(n) for n in config.split.test_names),
                     split_seed=int(config.split.seed))
        folder = pathlib.Path(str(config.manual_dir)).expanduser().resolve().name or "folder"
        slug = re.sub(r"[^a-z0-9]+", "_", folder.lower()).strip("_") or "folder"
        name = f"{slug}_s{resize['short_side']}_{resize['interpolation']}_{_digest(split)}"
        extra = split
    elif config.name == "hdr_real":
        extra = dict(train_dir=str(config.real.train_dir), test_dir=str(config.real.test_dir),
                     match_names=bool(config.real.match_names))
        resize = dict(short_side=0)
        name = f"pairs_{_digest(extra)}"
    else:
        raise DataError(f"config.data.name: {config.name!r} has no TFDS builder")
    description = ", ".join(f"{k}={v}" for k, v in {**resize, **extra}.items())
    return HdrConfig(name=name, version=VERSION, description=description, release_notes={},
                     **resize, **extra)


class _LocalDatasetInfo(tfds.core.DatasetInfo):
    """DatasetInfo of a dataset prepared from local files only.

    TFDS builds a builder whose dataset is not prepared yet with `initialize_from_bucket`,
    which makes an empty `tmp*tfds` folder in the system temp directory, never removes it,
    and asks TFDS's public bucket for metadata.  Ours are never there (a user's own files).
    """

    def initialize_from_bucket(self) -> None:
        return None


# Raw bytes: sizes vary per image, and HDR floats barely compress (reads stay fast).
_HDR = tfds.features.Tensor(shape=(None, None, 3), dtype=np.float32,
                            encoding=tfds.features.Encoding.BYTES)


class _ManualBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Shared parts: images from `manual_dir`, one record per file, split lists per subclass."""

    VERSION = tfds.core.Version(VERSION)
    RELEASE_NOTES = {str(VERSION): "First release."}

    NAMES_RELATIVE = False  # record names: file stems, or paths below manual_dir

    def _split_generators(self, dl_manager):
        self._root = pathlib.Path(dl_manager.manual_dir)
        # Empty splits (e.g. test_fraction = 0) are left out rather than written empty.
        return {split: self._generate_examples(entries)
                for split, entries in self.split_entries(self._root).items() if entries}

    def split_entries(self, manual_dir) -> dict:
        """{split: list of files} found in `manual_dir` (raises DataError when unusable)."""
        raise NotImplementedError

    def _generate_examples(self, entries):
        cfg = self.builder_config
        root = self._root if self.NAMES_RELATIVE else None
        for i, entry in enumerate(entries):
            # The key keeps the file order recoverable (TFDS shuffles by key hash).
            yield f"{i:06d}", {
                "hdr": sources.load_hdr(entry, cfg.short_side, cfg.interpolation),
                "name": sources.entry_name(entry, root),
            }

    def _info(self):
        return _LocalDatasetInfo(
            builder=self, description=self.__doc__,
            features=tfds.features.FeaturesDict({"hdr": _HDR, "name": tfds.features.Text()}))


class HdrSynth(_ManualBuilder, skip_registration=True):
    """HDR-Synth (Liu et al. 2020): the reference's 503 train / 60 test HDR images."""

    NAMES_RELATIVE = True  # e.g. "funt/hdr/S0350": stems repeat across the source folders

    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Unpack the HDR-Synth training data (SingleHDR_training_data.zip) and pass the folder "
        "the reference's i_dataset_{train,test} paths are relative to (its --hdr_prefix).")

    def split_entries(self, manual_dir):
        return {split: sources.hdr_synth_files(manual_dir, split) for split in ("train", "test")}


class HdrFolder(_ManualBuilder, skip_registration=True):
    """Any folder of .hdr/.exr files, split into train/test by a seeded fraction or names."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = "Pass the folder holding the .hdr/.exr files."

    def split_entries(self, manual_dir):
        cfg = self.builder_config
        return sources.hdr_folder_split(manual_dir, test_fraction=cfg.test_fraction,
                                        test_names=cfg.test_names, seed=cfg.split_seed)


class HdrReal(_ManualBuilder, skip_registration=True):
    """HDR-Real (Liu et al. 2020): HDR_gt/*.hdr with LDR_in/*.jpg pairs, per split folder."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Pass a folder with one sub-folder per split (config.data.real.train_dir / test_dir), "
        "each holding HDR_gt/*.hdr and LDR_in/*.jpg.")

    def split_entries(self, manual_dir):
        cfg = self.builder_config
        dirs = {"train": cfg.train_dir, "test": cfg.test_dir}
        return {split: sources.hdr_real_pairs(pathlib.Path(manual_dir) / d,
                                              match_names=cfg.match_names)
                for split, d in dirs.items() if d}

    def _generate_examples(self, entries):
        for i, (hdr_path, ldr_path) in enumerate(entries):
            yield f"{i:06d}", sources.load_pair(hdr_path, ldr_path)

    def _info(self):
        return _LocalDatasetInfo(
            builder=self, description=self.__doc__,
            features=tfds.features.FeaturesDict({
                "hdr": _HDR,
                "ldr": tfds.features.Tensor(shape=(None, None, 3), dtype=np.uint8,
                                            encoding=tfds.features.Encoding.BYTES),
                "name": tfds.features.Text()}))


BUILDERS = {"hdr_synth": HdrSynth, "hdr_folder": HdrFolder, "hdr_real": HdrReal}


class _DropCustomConfigWarning(logging.Filter):
    # TFDS warns about every BuilderConfig that is not in BUILDER_CONFIGS; ours never are
    # (their names encode the user's parameters), so the warning carries no information.
    def filter(self, record):
        return not record.getMessage().startswith("Using custom data configuration")


@contextlib.contextmanager
def _quiet_custom_config():
    logger, flt = logging.getLogger("absl"), _DropCustomConfigWarning()
    logger.addFilter(flt)
    try:
        yield
    finally:
        logger.removeFilter(flt)


def make_builder(config) -> tfds.core.DatasetBuilder:
    """The TFDS builder for the `data` ConfigDict (not prepared yet, see `prepare`)."""
    cls = BUILDERS[config.name]
    data_dir = str(pathlib.Path(str(config.data_dir)).expanduser()) if config.data_dir else None
    with _quiet_custom_config():
        return cls(data_dir=data_dir, config=builder_config(config), file_format="array_record")


def prepare(config) -> tfds.core.DatasetBuilder:
    """Prepare (once) the TFDS dataset of `config` from its manual_dir; return the builder."""
    builder = make_builder(config)
    if not builder.is_prepared():
        manual = pathlib.Path(str(config.manual_dir)).expanduser()
        if not config.manual_dir or not manual.is_dir():
            raise DataError(f"{manual}: config.data.manual_dir does not exist or is not a "
                            f"folder, and {builder.data_path} is not prepared")
        # List (and check) the files before TFDS creates any folder.
        entries = builder.split_entries(manual)
        if not any(len(v) for v in entries.values()):
            raise DataError(f"{manual}: no images for {config.name}")
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
    return builder
