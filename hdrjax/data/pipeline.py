"""grain pipelines: the checkpointable training iterator and the deterministic eval set.

Training (per process):  item indices -> shard (process_index::process_count) -> global
shuffle (new order each epoch) -> repeat forever -> load + patch + augment (a grain
random_map: the element's generator comes from (seed, element index), so the stream is a pure
function of the seed and resumes exactly from `get_state()`) -> batch -> reader threads ->
optional worker processes.  Threads and workers each build whole batches and hand them back
in order, so the stream depends on the seed (and process layout) only.

What one item is depends on the dataset:
  procedural        a scene index; the scene is generated at patch_size.
  hdr_synth/folder  (image, crop) with crop in {0, 1}: the §1.1 512x512 patches, then §1.2.
  panorama mode     (image, view) with views_per_image random pinhole views at patch_size.
  hdr_real          (pair, k) with patches_per_image random crops of HDR and LDR.
"""
from __future__ import annotations

import collections.abc
import os
import time

import grain
import numpy as np

from hdrjax.camera.pipeline import extreme_shares
from hdrjax.data import panorama, procedural, sources, transforms
from hdrjax.data.config import DataError, validate_config

_PREPARE_WAIT_S = 3600  # processes other than 0 wait this long for process 0 to prepare
_EVAL_STREAM = 1  # procedural test scenes come from their own seed stream


# ----------------------------------------------------------------------------- sources

def _split_entries(config, split):
    # The file list of `split` (backend "files"); the same lists the TFDS builders use.
    if config.name == "hdr_synth":
        return sources.hdr_synth_files(config.manual_dir, split)
    if config.name == "hdr_folder":
        return sources.hdr_folder_split(config.manual_dir, test_fraction=config.split.test_fraction,
                                        test_names=tuple(config.split.test_names),
                                        seed=config.split.seed)[split]
    subdir = {"train": config.real.train_dir, "test": config.real.test_dir}[split]
    if not subdir:
        raise DataError(f"config.data.real.{split}_dir is empty: hdr_real has no {split} split")
    return sources.hdr_real_pairs(os.path.join(os.path.expanduser(config.manual_dir), subdir),
                                  match_names=config.real.match_names)


def _tfds_source(config, split, process_index):
    from hdrjax.data import builders  # tensorflow_datasets is imported only when used

    builder = builders.make_builder(config)
    if not builder.is_prepared():
        if not config.prepare:
            raise DataError(f"{builder.data_path}: not prepared and config.data.prepare is False; "
                            f"run `python -m hdrjax.data --name {config.name} --manual_dir "
                            f"{config.manual_dir} --data_dir {config.data_dir or '~/tensorflow_datasets'}`")
        if process_index == 0:
            builder = builders.prepare(config)
        else:
            # Process 0 prepares; TFDS renames the finished folder into place atomically.
            deadline = time.monotonic() + _PREPARE_WAIT_S
            while not builder.is_prepared():
                if time.monotonic() > deadline:
                    raise DataError(f"{builder.data_path}: process 0 did not finish preparing it")
                time.sleep(5)
                builder = builders.make_builder(config)
    if split not in builder.info.splits:
        raise DataError(f"{builder.data_path}: the prepared {config.name} has no {split!r} split "
                        f"(splits: {', '.join(builder.info.splits) or 'none'})")
    return builder.as_data_source(split=split)


def record_source(config, split, *, process_index=0):
    """Random-access decoded records {"hdr", "name"[, "ldr"]} of a file dataset's `split`."""
    if config.backend == "files":
        entries = _split_entries(config, split)
        if not entries:
            raise DataError(f"{config.manual_dir}: {config.name} has no {split} images")
        root = (os.path.expanduser(config.manual_dir) if config.name == "hdr_synth" else None)
        source = sources.FileSource(entries, short_side=0 if config.name == "hdr_real"
                                    else config.short_side,
                                    interpolation=config.resize_interpolation,
                                    pairs=config.name == "hdr_real", root=root)
    else:
        source = _tfds_source(config, split, process_index)
    if len(source) == 0:
        raise DataError(f"{config.manual_dir}: {config.name} has no {split} images")
    return sources.CachedSource(source, config.cache_images)


# ----------------------------------------------------------------------------- transforms

def _extreme_fraction(ldr_u8):
    # §3.4: share of pixels that are over- or under-exposed (the two counts added), by the
    # extreme-pixel rule of the loss mask (§1.5).
    over, under = extreme_shares(np.asarray(ldr_u8, np.float32) / 255.0)
    return float(over + under)


class TrainTransform(grain.transforms.RandomMap):
    """Item index + generator -> one training example {"hdr": f32[P, P, 3][, "ldr"]}."""

    def __init__(self, config, source, per_record: int):
        self.c = config
        self.source = source
        self.per_record = per_record

    def _flip(self, arrays, rng):
        c = self.c
        return transforms.random_rotate_flip(arrays, rng, rot90=c.rot90, flip_rows=c.flip_rows,
                                             flip_cols=c.flip_cols)

    def random_map(self, index, rng):
        c = self.c
        p = c.patch_size
        if c.name == "procedural":
            hdr = transforms.mean_normalize(self.source[index]["hdr"], c.mean_target, c.mean_eps)
            if c.procedural.augment:
                (hdr,) = self._flip([hdr], rng)
            return {"hdr": hdr}
        record = self.source[index // self.per_record]
        if c.name == "hdr_real":
            return self._real_patch(record, rng)
        if c.panorama.enabled:
            pc = c.panorama
            view = panorama.random_view_params(rng, fov_range=pc.fov_range,
                                               pitch_std=pc.pitch_std, pitch_max=pc.pitch_max,
                                               roll_std=pc.roll_std)
            hdr = panorama.render_view(record["hdr"], p, antialias=pc.antialias, **view)
            hdr = transforms.mean_normalize(hdr, c.mean_target, c.mean_eps)
        else:
            patch = transforms.reference_crop(record["hdr"], index % 2, c.crop_size_reference)
            patch = transforms.mean_normalize(patch, c.mean_target, c.mean_eps)
            hdr = transforms.random_rescale_crop(patch, rng, patch_size=p,
                                                 scale_range=c.scale_range,
                                                 interpolation=c.resize_interpolation)
        (hdr,) = self._flip([hdr], rng)
        return {"hdr": hdr}

    def _real_patch(self, record, rng):
        # A random crop, redrawn (up to max_tries) while more than max_extreme_fraction of its
        # LDR pixels are over/under-exposed -- the reference drops such grid patches (§3.4).
        c, p = self.c, self.c.patch_size
        hdr_full, ldr_full = record["hdr"], record["ldr"]
        h, w = hdr_full.shape[:2]
        if min(h, w) < p:
            raise DataError(f"hdr_real image {record['name']} is {w}x{h}, smaller than "
                            f"config.data.patch_size {p}")
        for _ in range(max(1, c.real.max_tries)):
            y0, x0 = int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))
            ldr = ldr_full[y0:y0 + p, x0:x0 + p]
            if _extreme_fraction(ldr) <= c.real.max_extreme_fraction:
                break
        hdr = transforms.mean_normalize(hdr_full[y0:y0 + p, x0:x0 + p], c.mean_target, c.mean_eps)
        hdr, ldr = self._flip([hdr, ldr.astype(np.float32) / 255.0], rng)
        return {"hdr": hdr, "ldr": ldr}


class EvalTransform(grain.transforms.Map):
    """Item index -> one deterministic test example {"hdr", "name"[, "ldr"]} (§1.7)."""

    def __init__(self, config, source, per_record: int):
        self.c, self.source, self.per_record = config, source, per_record

    def map(self, index):
        c, e = self.c, self.c.eval_patch_size
        if c.name == "procedural":
            record = self.source[index]
            return {"hdr": transforms.mean_normalize(record["hdr"], c.mean_target, c.mean_eps),
                    "name": record["name"]}
        record = self.source[index // self.per_record]
        sub = index % self.per_record
        name = f"{record['name']}_{sub}"
        if c.name == "hdr_real":
            h, w = record["hdr"].shape[:2]
            if min(h, w) < e:
                raise DataError(f"hdr_real test image {record['name']} is {w}x{h}, smaller than "
                                f"config.data.eval_patch_size {e}")
            hdr = transforms.reference_crop(record["hdr"], sub, e)
            ldr = transforms.reference_crop(record["ldr"], sub, e).astype(np.float32) / 255.0
            return {"hdr": transforms.mean_normalize(hdr, c.mean_target, c.mean_eps),
                    "ldr": ldr, "name": name}
        if c.panorama.enabled:
            yaw = 360.0 * sub / self.per_record
            hdr = panorama.render_view(record["hdr"], e, c.panorama.eval_fov, yaw, 0.0,
                                       antialias=c.panorama.antialias)
        else:
            crop = transforms.reference_crop(record["hdr"], sub, c.crop_size_reference)
            hdr = transforms.center_crop(crop, e)
        return {"hdr": transforms.mean_normalize(hdr, c.mean_target, c.mean_eps), "name": name}


# ----------------------------------------------------------------------------- public API

def _records_per_item(config, train: bool) -> int:
    if config.name == "procedural":
        return 1
    if config.name == "hdr_real":
        return config.real.patches_per_image if train else 2
    if config.panorama.enabled:
        return config.panorama.views_per_image if train else config.panorama.eval_views
    return 2  # §1.1: two patches per image


def _seed32(*entropy) -> int:
    # grain seeds are 32-bit; SeedSequence mixes (seed, process, purpose) into one.
    return int(np.random.SeedSequence([int(e) % 2**64 for e in entropy]).generate_state(1)[0])


def make_train_iterator(config, *, global_batch_size: int, seed: int, process_index: int = 0,
                        process_count: int = 1):
    """Checkpointable grain iterator of {"hdr": f32[b, P, P, 3]} (+ "ldr" for hdr_real).

    b = global_batch_size // process_count; each process reads its own shard of the items.
    `get_state()` / `set_state()` resume the exact stream.
    """
    validate_config(config, global_batch_size=global_batch_size, process_count=process_count)
    if not 0 <= process_index < process_count:
        raise DataError(f"process_index {process_index} is not in [0, {process_count})")
    if config.name == "procedural":
        source = procedural.ProceduralSource(config.procedural.seed,
                                             config.procedural.num_train_scenes, config.patch_size)
    else:
        source = record_source(config, "train", process_index=process_index)
    per_record = _records_per_item(config, train=True)
    n_items = len(source) * per_record
    if n_items < process_count:
        raise DataError(f"{config.name}: {len(source)} training images give {n_items} items, "
                        f"fewer than the {process_count} processes that share them")
    ds = grain.MapDataset.range(n_items)[process_index::process_count]
    # Processes draw different shuffles and augmentations (their items differ anyway).
    if config.shuffle:
        ds = ds.shuffle(seed=_seed32(seed, process_index, 1))
    ds = ds.repeat(None)
    ds = ds.random_map(TrainTransform(config, source, per_record),
                       seed=_seed32(seed, process_index, 2))
    # Batch before the reader threads / worker processes: each batch is one element, which
    # they hand back in order, so the stream does not depend on num_threads or num_workers.
    ds = ds.batch(global_batch_size // process_count, drop_remainder=True)
    ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=config.num_threads,
                                              prefetch_buffer_size=config.prefetch))
    if config.num_workers > 0:
        # grain's worker processes read absl flags; outside an absl app (scripts, notebooks,
        # tests) they are unparsed, so take their defaults (an absl app has parsed them).
        from absl import flags
        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(
            num_workers=config.num_workers, per_worker_buffer_size=config.worker_buffer_size))
    return iter(ds)


class EvalDataset(collections.abc.Sequence):
    """Deterministic test examples: len, [i], [a:b], lazy in-order iteration, batches(n)."""

    def __init__(self, transform: EvalTransform, indices):
        self._transform, self._indices = transform, indices

    def __len__(self):
        return len(self._indices)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return EvalDataset(self._transform, self._indices[i])
        return self._transform.map(self._indices[i])

    def batches(self, batch_size: int):
        """Yield dicts of stacked arrays (names as a list), the last batch possibly smaller."""
        for start in range(0, len(self), batch_size):
            items = [self[i] for i in range(start, min(start + batch_size, len(self)))]
            yield {k: ([x[k] for x in items] if k == "name" else np.stack([x[k] for x in items]))
                   for k in items[0]}

    def __repr__(self):
        return f"EvalDataset({self._transform.c.name}, {len(self)} examples)"


def make_eval_dataset(config, *, split: str = "test", num_patches: int | None = None) -> EvalDataset:
    """Deterministic test patches (§1.7): a sequence of {"hdr", "name"[, "ldr"]} dicts.

    Each "hdr" is f32[E, E, 3] (E = eval_patch_size), mean-normalised; "ldr" (hdr_real) is
    f32 in [0, 1].  Examples are built lazily on access.  `num_patches` keeps the first n.
    The set depends on the config only (no seed): runs with different training seeds evaluate
    on the same patches.
    """
    validate_config(config, for_eval=True)
    if config.name == "procedural":
        n = config.procedural.num_test_scenes
        source = procedural.ProceduralSource(config.procedural.seed, n, config.eval_patch_size,
                                             stream=_EVAL_STREAM)
    else:
        source = record_source(config, split)
    per_record = _records_per_item(config, train=False)
    ds = EvalDataset(EvalTransform(config, source, per_record), range(len(source) * per_record))
    return ds if num_patches is None else ds[:int(num_patches)]
