"""The `data` config schema (nested by the trainer as `config.data`) and its validation.

Section numbers (§) refer to docs/reference.md; "ours" marks a choice that
is not in the reference.
"""
from __future__ import annotations

import ml_collections
from hdrjax.errors import HdrjaxError

DATASETS = ("procedural", "hdr_folder", "hdr_synth", "hdr_real")
INTERPOLATIONS = ("area", "linear")


class DataError(HdrjaxError):
    """A data problem a user can fix: missing/empty folder, bad config field, too few images."""


def default_config() -> ml_collections.ConfigDict:
    """Every field hdrjax.data reads, with the reference value as default (see comments)."""
    c = ml_collections.ConfigDict()
    # Which data: procedural (built in, no files; ours) | hdr_folder (any folder of .hdr/.exr;
    # ours) | hdr_synth (the reference's 503/60 HDR-Synth lists, §1.1) | hdr_real (HDR-Real
    # HDR_gt/LDR_in pairs, §3.4).
    c.name = "procedural"
    # Raw files: hdr_synth = the reference's --hdr_prefix (the list entries are relative to it);
    # hdr_real = a folder with one sub-folder per split (`real.train_dir`, `real.test_dir`);
    # hdr_folder = the folder of .hdr/.exr files itself.  Unused by procedural.
    c.manual_dir = ""
    # Where the TFDS array_record files are prepared; "" = TFDS's default (~/tensorflow_datasets
    # or $TFDS_DATA_DIR).  Unused by procedural and by backend "files".
    c.data_dir = ""
    c.backend = "tfds"  # tfds (prepared array_record, ours) | files (read the files directly)
    c.prepare = True  # prepare the TFDS dataset on first use when it is absent (ours)

    # Patching (§1.1) and augmentation (§1.2).
    c.patch_size = 256  # §1.2: 256x256 training patches
    c.short_side = 512  # §1.1: resize so the shorter side is 512
    c.crop_size_reference = 512  # §1.1: two 512x512 patches per image (first/last along long side)
    # §1.1/§1.2: the reference meant cv2.INTER_AREA but passed the flag into `dst`, so it ran
    # bilinear.  "area" = the paper's intent (INTER_AREA when shrinking, bilinear when
    # enlarging; our default); "linear" = what the reference code actually did.
    c.resize_interpolation = "area"
    c.mean_target = 0.5  # §1.1: each patch is scaled so its mean is 0.5
    c.mean_eps = 1e-6  # §1.1: divide by mean + 1e-6
    c.scale_range = (0.5, 2.0)  # §1.2: s ~ U(0.5, 2), patch resized to round(512 s)
    c.rot90 = True  # §1.2: rot90 by k ~ U{0..3}
    c.flip_rows = True  # §1.2: flip rows with p = 0.5
    c.flip_cols = True  # §1.2: then flip columns with p = 0.5

    # Evaluation patches (§1.7: the two 512x512 crops of each test image, no augmentation,
    # mean 0.5).  A smaller size takes the centre of each crop (CPU smoke runs).
    c.eval_patch_size = 512

    # Train/test split of hdr_folder (ours; hdr_synth and hdr_real carry their own splits).
    c.split = ml_collections.ConfigDict()
    c.split.test_fraction = 0.1  # fraction of the (sorted) files held out for test
    c.split.test_names = ()  # explicit test file names (overrides test_fraction when given)
    c.split.seed = 0  # permutation of the sorted file names that picks the test files

    # Panorama mode (ours): sources are 360x180 equirectangular HDRs; each training item is a
    # random pinhole view rendered at patch_size (replaces §1.1 crops and §1.2 rescale/crop).
    c.panorama = ml_collections.ConfigDict()
    c.panorama.enabled = False
    c.panorama.fov_range = (50.0, 90.0)  # horizontal field of view, degrees, uniform
    c.panorama.pitch_std = 15.0  # pitch ~ N(0, 15 deg), clipped to +-pitch_max
    c.panorama.pitch_max = 60.0
    c.panorama.roll_std = 0.0  # roll ~ N(0, roll_std deg); 0 = level camera
    c.panorama.views_per_image = 16  # views per panorama per epoch (yaw is uniform)
    c.panorama.eval_fov = 70.0  # evaluation views: this fov, pitch 0 ...
    c.panorama.eval_views = 4  # ... and this many yaws evenly spaced from 0
    c.panorama.antialias = True  # render at k x size and area-shrink when the view minifies

    # Procedural scenes (ours): generated from (seed, index), no files.
    c.procedural = ml_collections.ConfigDict()
    c.procedural.seed = 0  # the scene content; the train seed only orders/augments
    c.procedural.num_train_scenes = 1_000_000  # distinct training scenes per epoch
    c.procedural.num_test_scenes = 120  # §1.7 has 120 test patches
    c.procedural.augment = False  # scenes are already random in scale/orientation

    # HDR-Real (§3.4): <manual_dir>/<train_dir|test_dir>/{HDR_gt/*.hdr, LDR_in/*.jpg}.
    c.real = ml_collections.ConfigDict()
    c.real.train_dir = "train"  # e.g. R_CVPR2020_jpg_training; "" = no train split
    c.real.test_dir = "test"  # "" = no test split
    c.real.match_names = True  # pairs by sorted index (§3.4) AND equal stems; False = index only
    c.real.patches_per_image = 16  # random patches per pair per epoch (ours, see README)
    c.real.max_extreme_fraction = 0.5  # §3.4: drop if (#gray>=249)+(#gray<=6) > half ...
    c.real.max_tries = 8  # ... by redrawing the crop up to this many times (ours)

    # Loading (ours): grain settings.  Shuffling is a global index shuffle (no buffer).
    c.shuffle = True
    c.num_workers = 0  # worker processes (grain mp_prefetch); 0 = in the main process
    c.num_threads = 4  # reader threads per process (grain ReadOptions)
    c.prefetch = 16  # batches prefetched per process (grain ReadOptions)
    c.worker_buffer_size = 2  # batches buffered per worker process
    # Decoded images kept per process (and per worker), LRU.  A TFDS read decompresses the
    # whole image (~30 ms for a 1024x512 panorama), so keep as many as memory allows: the
    # reference holds all its images in memory.  1024x512 float32 = 6 MiB each.
    c.cache_images = 64
    return c


def validate_config(config, *, global_batch_size=None, process_count=1, for_eval=False):
    """Raise DataError naming the field when `config` (the `data` ConfigDict) is unusable."""
    def fail(field, problem):
        raise DataError(f"config.data.{field}: {problem}")

    if config.name not in DATASETS:
        fail("name", f"unknown dataset {config.name!r}; known: {', '.join(DATASETS)}")
    if config.backend not in ("tfds", "files"):
        fail("backend", f"{config.backend!r} is not 'tfds' or 'files'")
    if config.resize_interpolation not in INTERPOLATIONS:
        fail("resize_interpolation",
             f"{config.resize_interpolation!r} is not one of {', '.join(INTERPOLATIONS)}")
    for field in ("patch_size", "short_side", "crop_size_reference", "eval_patch_size"):
        if int(config[field]) < 1:
            fail(field, f"must be positive, got {config[field]}")
    if config.crop_size_reference > config.short_side:
        fail("crop_size_reference",
             f"{config.crop_size_reference} exceeds short_side {config.short_side}")
    crops_for_eval = config.name != "procedural" and not config.panorama.enabled
    if for_eval and crops_for_eval and config.eval_patch_size > config.crop_size_reference:
        fail("eval_patch_size",
             f"{config.eval_patch_size} exceeds crop_size_reference {config.crop_size_reference}")
    lo, hi = (float(v) for v in config.scale_range)
    if not 0 < lo <= hi:
        fail("scale_range", f"need 0 < low <= high, got {tuple(config.scale_range)}")
    uses_scale = config.name in ("hdr_folder", "hdr_synth") and not config.panorama.enabled
    if uses_scale and round(config.crop_size_reference * lo) < config.patch_size:
        fail("scale_range",
             f"the smallest rescaled patch round({config.crop_size_reference}*{lo}) is smaller "
             f"than patch_size {config.patch_size}; raise scale_range[0] or crop_size_reference")
    if not 0 < config.mean_target:
        fail("mean_target", "must be positive")
    f0, f1 = (float(v) for v in config.panorama.fov_range)
    if not 0 < f0 <= f1 < 180:
        fail("panorama.fov_range", f"need 0 < low <= high < 180, got {(f0, f1)}")
    if config.panorama.views_per_image < 1:
        fail("panorama.views_per_image", "must be >= 1")
    if config.panorama.enabled and config.name not in ("hdr_folder", "hdr_synth"):
        fail("panorama.enabled", f"panorama views need image files, not {config.name!r}")
    if not 0 <= config.split.test_fraction < 1:
        fail("split.test_fraction", f"must be in [0, 1), got {config.split.test_fraction}")
    if config.real.patches_per_image < 1:
        fail("real.patches_per_image", "must be >= 1")
    if config.num_workers < 0 or config.num_threads < 0 or config.prefetch < 0:
        fail("num_workers", "num_workers, num_threads and prefetch must be >= 0")
    if config.name != "procedural" and not config.manual_dir:
        fail("manual_dir", f"dataset {config.name!r} reads files: set it to the raw data folder")
    if global_batch_size is not None:
        if global_batch_size < 1 or global_batch_size % process_count:
            raise DataError(f"global_batch_size {global_batch_size} is not a positive multiple "
                            f"of process_count {process_count}")
