"""Read TensorFlow checkpoints (tensor bundle V2, as written by TF1's `tf.train.Saver`) without TF.

A V2 checkpoint `PREFIX` is two kinds of file:

* `PREFIX.index`: a LevelDB-format table (SSTable) whose keys are the variable names, sorted;
  each value is a serialized `BundleEntryProto` (dtype, shape, shard_id, offset, size,
  crc32c).  The empty key "" holds the `BundleHeaderProto` (num_shards, endianness, version).
* `PREFIX.data-0000K-of-0000N`: the raw tensor bytes; an entry's bytes are
  `[offset, offset + size)` of shard `shard_id`.

This module is a pure-Python/numpy reader of that format (the default everywhere in hdrjax,
so TensorFlow is never needed).  It checks the SSTable magic, every block's masked crc32c and
compression byte (TF writes blocks uncompressed; anything else fails clearly) and, unless
`verify=False`, the masked crc32c of each tensor it loads.  Numeric dtypes (float16/32/64,
bfloat16 via ml_dtypes, [u]int8…64, bool, complex) are decoded; string, resource and variant
tensors are listed but not loaded.  Partitioned (sliced) variables are not supported.

Where TensorFlow *is* installed, `tensorflow_reader(prefix)` wraps `tf.train.load_checkpoint`
with the same interface (`hdrjax.tools.import_tf1 --reader tf`); use it as a cross-check.
The reader here is tested against checkpoint bytes written by real TensorFlow
(`tests/data/tf1_tiny`).

    list_variables(prefix)   -> {name: (dtype name, shape)}
    load_checkpoint(prefix)  -> {name: np.ndarray}
    CheckpointReader(prefix) -> .entries, .header, .get_tensor(name)

`prefix` may be the checkpoint prefix (`…/model.ckpt`), its `.index`, `.meta` or `.data-…` file, or a
directory (its `checkpoint` state file names the newest checkpoint; else its only `.index`).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import pathlib
import re
import struct
from typing import Iterable, Iterator

import numpy as np
from hdrjax.errors import HdrjaxError

TABLE_MAGIC = 0xDB4775248B80FB57  # LevelDB / TF table footer magic
FOOTER_SIZE = 48  # two BlockHandles padded to 2 x 10 bytes + the 8-byte magic
BLOCK_TRAILER_SIZE = 5  # compression type byte + masked crc32c
NO_COMPRESSION = 0
_COMPRESSION_NAMES = {1: "snappy", 2: "zlib"}
MAX_BUNDLE_MIN_CONSUMER = 1  # TF's kTensorBundleVersion; newer formats may change the layout

# TF DataType enum -> numpy dtype name (None: not a plain array of fixed-size elements).
DTYPES: dict[int, str] = {
    1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string",
    8: "complex64", 9: "int64", 10: "bool", 14: "bfloat16", 17: "uint16", 18: "complex128",
    19: "float16", 20: "resource", 21: "variant", 22: "uint32", 23: "uint64",
}
_NOT_NUMERIC = {"string", "resource", "variant"}


class TFCheckpointError(HdrjaxError):
    """A file that is missing, not a TF checkpoint, corrupt or unsupported; names the file."""

    def __init__(self, path, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


# ----------------------------------------------------------------------------- crc32c


def _make_crc_table() -> np.ndarray:
    poly = 0x82F63B78  # Castagnoli, bit-reflected
    table = np.zeros(256, np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table[i] = c
    return table


_CRC_TABLE = _make_crc_table()
_CRC_LIST = [int(v) for v in _CRC_TABLE]


def _slice_tables() -> tuple[np.ndarray, ...]:
    # T_k[i]: the register after byte i followed by k zero bytes (slicing-by-4).
    tables = [_CRC_TABLE]
    for _ in range(3):
        prev = tables[-1]
        tables.append((prev >> 8) ^ _CRC_TABLE[prev & 0xFF])
    return tuple(tables)


_CRC_SLICE_TABLES = _slice_tables()
_VECTOR_MIN_BYTES = 4096  # below this the plain loop is as fast as setting up lanes


def _crc_update_scalar(state: int, data: bytes | memoryview) -> int:
    table = _CRC_LIST
    for b in bytes(data):
        state = table[(state ^ b) & 0xFF] ^ (state >> 8)
    return state


# A linear map on the 32-bit CRC register, stored as the images of its 32 basis bits.
def _operator_apply(cols: tuple[int, ...], v: int) -> int:
    out, i = 0, 0
    while v:
        if v & 1:
            out ^= cols[i]
        v >>= 1
        i += 1
    return out


def _operator_compose(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """a ∘ b."""
    return tuple(_operator_apply(a, col) for col in b)


@functools.lru_cache(maxsize=64)
def _zeros_operator(n: int) -> tuple[int, ...]:
    """The register map of feeding n zero bytes (CRC is linear, so this is a 32x32 GF(2) matrix)."""
    if n == 0:
        return tuple(1 << i for i in range(32))
    if n == 1:
        return tuple(_CRC_LIST[(1 << i) & 0xFF] ^ ((1 << i) >> 8) for i in range(32))
    half = _zeros_operator(n // 2)
    op = _operator_compose(half, half)
    return _operator_compose(_zeros_operator(1), op) if n % 2 else op


@functools.lru_cache(maxsize=64)
def _operator_tables(cols: tuple[int, ...]) -> np.ndarray:
    """u32[4, 256]: the map applied to each byte of the register, for vectorised use."""
    cols_arr = np.asarray(cols, np.uint32)
    byte = np.arange(256, dtype=np.uint32)
    tables = np.zeros((4, 256), np.uint32)
    for k in range(4):
        for j in range(8):
            tables[k] ^= np.where((byte >> j) & 1, cols_arr[8 * k + j], np.uint32(0))
    return tables


def _crc_update_vector(state: int, data: np.ndarray) -> int:
    """Lane-parallel CRC: split into 2^k equal lanes, run them side by side, merge by linearity."""
    n = data.size
    lanes = 1 << max(0, min(16, int(math.log2(max(1, n // 256)))))
    words = n // lanes // 4  # each lane is a whole number of little-endian u32 words
    block = data[: lanes * words * 4].reshape(lanes, words * 4).view("<u4")
    block = np.ascontiguousarray(block.T)  # [words, lanes]
    t0, t1, t2, t3 = _CRC_SLICE_TABLES
    regs = np.zeros(lanes, np.uint32)
    regs[0] = state  # the register is linear in (initial state, data): other lanes start at 0
    for row in block:  # slicing-by-4: four bytes per step
        r = regs ^ row
        regs = t3[r & 0xFF] ^ t2[(r >> 8) & 0xFF] ^ t1[(r >> 16) & 0xFF] ^ t0[r >> 24]
    # Merge neighbours: reg(A ‖ B) = Z_len(B)(reg(A)) ^ reg(B).
    span = 4 * words
    while regs.size > 1:
        t = _operator_tables(_zeros_operator(span))
        a, b = regs[0::2], regs[1::2]
        regs = t[0][a & 0xFF] ^ t[1][(a >> 8) & 0xFF] ^ t[2][(a >> 16) & 0xFF] ^ t[3][a >> 24] ^ b
        span *= 2
    return _crc_update_scalar(int(regs[0]), data[lanes * words * 4 :].tobytes())


def crc32c(data, crc: int = 0) -> int:
    """CRC-32C (Castagnoli) of `data` (bytes-like or uint8 array), continuing from `crc`."""
    if isinstance(data, np.ndarray):
        buf = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    else:
        buf = np.frombuffer(data, np.uint8)
    state = (crc ^ 0xFFFFFFFF) & 0xFFFFFFFF
    if buf.size < _VECTOR_MIN_BYTES:
        state = _crc_update_scalar(state, buf.tobytes())
    else:
        state = _crc_update_vector(state, buf)
    return state ^ 0xFFFFFFFF


def mask_crc(crc: int) -> int:
    """LevelDB/TF crc masking (stored checksums are masked so data holding CRCs stays checkable)."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
    """Inverse of `mask_crc`."""
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# ----------------------------------------------------------------------------- protobuf / varints


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _int64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _proto_fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) of a serialized protobuf message, in order."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + n], pos + n
            if len(value) != n:
                raise ValueError("truncated length-delimited field")
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value
    if pos != len(buf):
        raise ValueError("truncated protobuf message")


@dataclasses.dataclass(frozen=True)
class TensorEntry:
    """One `BundleEntryProto`: where a tensor's bytes are and what they hold."""

    name: str
    dtype: str  # numpy dtype name, or "string" / "resource" / "variant" / "dtype<N>"
    shape: tuple[int, ...]
    shard_id: int = 0
    offset: int = 0
    size: int = 0
    crc32c: int = 0  # masked, as stored
    sliced: bool = False  # a partitioned variable (its parts are separate entries)


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for field, _, value in _proto_fields(buf):
        if field == 2:  # Dim {int64 size = 1; string name = 2}
            size = 0
            for f, _, v in _proto_fields(value):
                if f == 1:
                    size = _int64(v)
            dims.append(size)
        elif field == 3 and value:
            raise ValueError("tensor shape of unknown rank")
    return tuple(dims)


def _parse_entry(name: str, buf: bytes) -> TensorEntry:
    kw: dict = {"dtype": "dtype0", "shape": ()}
    for field, _, value in _proto_fields(buf):
        if field == 1:
            kw["dtype"] = DTYPES.get(value, f"dtype{value}")
        elif field == 2:
            kw["shape"] = _parse_shape(value)
        elif field == 3:
            kw["shard_id"] = value
        elif field == 4:
            kw["offset"] = _int64(value)
        elif field == 5:
            kw["size"] = _int64(value)
        elif field == 6:
            kw["crc32c"] = value
        elif field == 7:
            kw["sliced"] = True
    return TensorEntry(name=name, **kw)


def _parse_header(buf: bytes) -> dict:
    header = {"num_shards": 0, "endianness": "little", "producer": 0, "min_consumer": 0}
    for field, _, value in _proto_fields(buf):
        if field == 1:
            header["num_shards"] = value
        elif field == 2:
            header["endianness"] = "big" if value == 1 else "little"
        elif field == 3:  # VersionDef {producer = 1; min_consumer = 2; bad_consumers = 3}
            for f, _, v in _proto_fields(value):
                if f == 1:
                    header["producer"] = v
                elif f == 2:
                    header["min_consumer"] = v
    return header


# ----------------------------------------------------------------------------- SSTable


def _block(data: bytes, handle: tuple[int, int], what: str) -> bytes:
    offset, size = handle
    end = offset + size + BLOCK_TRAILER_SIZE
    if offset < 0 or end > len(data):
        raise ValueError(f"{what} block [{offset}, {end}) lies outside the {len(data)}-byte file")
    contents = data[offset : offset + size]
    kind = data[offset + size]
    stored = struct.unpack_from("<I", data, offset + size + 1)[0]
    if unmask_crc(stored) != crc32c(data[offset : offset + size + 1]):
        raise ValueError(f"{what} block at offset {offset} fails its crc32c check (corrupt file)")
    if kind != NO_COMPRESSION:
        name = _COMPRESSION_NAMES.get(kind, f"type {kind}")
        raise ValueError(f"{what} block is {name}-compressed; only uncompressed tables (as TF writes them) are supported")
    return contents


def _block_entries(contents: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of a table block: prefix-compressed entries, then restart offsets."""
    if len(contents) < 4:
        raise ValueError("block too short")
    n_restarts = struct.unpack_from("<I", contents, len(contents) - 4)[0]
    limit = len(contents) - 4 - 4 * n_restarts
    if limit < 0:
        raise ValueError("block restart array is larger than the block")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _varint(contents, pos)
        unshared, pos = _varint(contents, pos)
        vlen, pos = _varint(contents, pos)
        if shared > len(key) or pos + unshared + vlen > limit:
            raise ValueError("malformed block entry")
        key = key[:shared] + contents[pos : pos + unshared]
        pos += unshared
        yield key, contents[pos : pos + vlen]
        pos += vlen


def _handle(buf: bytes, pos: int = 0) -> tuple[tuple[int, int], int]:
    offset, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return (offset, size), pos


def read_table(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """All (key, value) pairs of a LevelDB-format table held in `data`, in key order."""
    if len(data) < FOOTER_SIZE:
        raise ValueError(f"{len(data)} bytes is too short for a table footer")
    footer = data[-FOOTER_SIZE:]
    if struct.unpack_from("<Q", footer, FOOTER_SIZE - 8)[0] != TABLE_MAGIC:
        raise ValueError("no table magic number at the end (not a TF checkpoint index)")
    _, pos = _handle(footer)  # metaindex: TF writes it empty
    index_handle, _ = _handle(footer, pos)
    for _, value in _block_entries(_block(data, index_handle, "index")):
        handle, _ = _handle(value)
        yield from _block_entries(_block(data, handle, "data"))


# ----------------------------------------------------------------------------- paths


def resolve_prefix(path) -> pathlib.Path:
    """The checkpoint prefix (`…/model.ckpt`) of a prefix, `.index`/`.meta`/`.data-…` file or directory."""
    p = pathlib.Path(os.fspath(path)).expanduser()
    if p.is_dir():
        return _prefix_in_directory(p)
    for suffix in (".index", ".meta"):  # .meta: the graph TF1 saves beside the checkpoint
        if p.name.endswith(suffix):
            p = p.with_name(p.name[: -len(suffix)])
            break
    else:
        m = re.match(r"^(.*)\.data-\d{5}-of-\d{5}$", p.name)
        if m:
            p = p.with_name(m.group(1))
    if not _index_path(p).is_file():
        if p.exists() and not p.is_dir():
            raise TFCheckpointError(p, f"not a TF checkpoint: there is no {_index_path(p).name} beside it")
        raise TFCheckpointError(p, f"no such checkpoint (expected {_index_path(p).name} and a .data-… file)")
    return p


def _index_path(prefix: pathlib.Path) -> pathlib.Path:
    return prefix.with_name(prefix.name + ".index")


def _prefix_in_directory(d: pathlib.Path) -> pathlib.Path:
    state = d / "checkpoint"
    if state.is_file():
        # CheckpointState text proto: model_checkpoint_path: "…".  Paths may be relative to
        # the directory or absolute on the machine that wrote them (then the directory wins).
        m = re.search(r'^model_checkpoint_path:\s*"((?:[^"\\]|\\.)*)"', state.read_text(errors="replace"), re.M)
        if m:
            named = pathlib.Path(m.group(1).encode().decode("unicode_escape"))
            for candidate in (named if named.is_absolute() else d / named, d / named.name):
                if _index_path(candidate).is_file():
                    return candidate
    indexes = sorted(d.glob("*.index"))
    if len(indexes) == 1:
        return indexes[0].with_name(indexes[0].name[: -len(".index")])
    if not indexes:
        raise TFCheckpointError(d, "directory holds no TF checkpoint (no *.index file)")
    names = ", ".join(i.name for i in indexes)
    raise TFCheckpointError(d, f"directory holds several checkpoints ({names}) and no usable 'checkpoint' file; name one")


# ----------------------------------------------------------------------------- reader


def _numpy_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes  # ships with jax

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


class CheckpointReader:
    """Index of a V2 checkpoint (`entries`, `header`) and tensor loading by name (`get_tensor`)."""

    def __init__(self, path, *, verify: bool = True):
        self.prefix = resolve_prefix(path)
        self.verify = verify
        index = _index_path(self.prefix)
        try:
            data = index.read_bytes()
        except OSError as e:
            raise TFCheckpointError(index, f"cannot read: {e.strerror or e}") from None
        try:
            records = list(read_table(data))
        except (ValueError, struct.error) as e:
            raise TFCheckpointError(index, f"not a readable TF checkpoint index: {e}") from None
        if not records or records[0][0] != b"":
            raise TFCheckpointError(index, "not a TF tensor-bundle index (no header entry)")
        try:
            self.header = _parse_header(records[0][1])
            entries = {}
            for key, value in records[1:]:
                name = key.decode("utf-8")
                entries[name] = _parse_entry(name, value)
        except (ValueError, UnicodeDecodeError) as e:
            raise TFCheckpointError(index, f"malformed tensor-bundle entry: {e}") from None
        if self.header["min_consumer"] > MAX_BUNDLE_MIN_CONSUMER:
            raise TFCheckpointError(
                index, f"written in tensor-bundle version {self.header['min_consumer']}, newer than this reader knows"
            )
        if self.header["num_shards"] < 1:
            raise TFCheckpointError(index, "header says the checkpoint has no data shards")
        self.entries: dict[str, TensorEntry] = entries
        self.index_path = index

    def shard_path(self, shard_id: int) -> pathlib.Path:
        """File name of data shard `shard_id`."""
        n = self.header["num_shards"]
        return self.prefix.with_name(f"{self.prefix.name}.data-{shard_id:05d}-of-{n:05d}")

    def variables(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """{name: (dtype name, shape)} of every tensor."""
        return {name: (e.dtype, e.shape) for name, e in self.entries.items()}

    def get_tensor(self, name: str) -> np.ndarray:
        """The tensor `name` as a (writable, native byte order) numpy array."""
        return self.get_tensors([name])[name]

    def get_tensors(self, names: Iterable[str]) -> dict[str, np.ndarray]:
        """{name: array} for `names`, reading each shard file once."""
        names = list(names)
        unknown = [n for n in names if n not in self.entries]
        if unknown:
            raise TFCheckpointError(self.prefix, f"has no variable {unknown[0]!r}" + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))
        by_shard: dict[int, list[TensorEntry]] = {}
        for n in names:
            e = self.entries[n]
            self._check_loadable(e)
            by_shard.setdefault(e.shard_id, []).append(e)
        out = {}
        for shard, group in sorted(by_shard.items()):
            path = self.shard_path(shard)
            try:
                with open(path, "rb") as f:
                    for e in sorted(group, key=lambda e: e.offset):
                        f.seek(e.offset)
                        out[e.name] = self._decode(e, f.read(e.size), path)
            except FileNotFoundError:
                raise TFCheckpointError(path, "data shard is missing (copy every .data-… file of the checkpoint)") from None
            except OSError as e:
                raise TFCheckpointError(path, f"cannot read: {e.strerror or e}") from None
        return {n: out[n] for n in names}

    def _check_loadable(self, e: TensorEntry) -> None:
        if e.sliced:
            raise TFCheckpointError(self.prefix, f"{e.name} is a partitioned variable, which this reader does not support")
        if e.dtype in _NOT_NUMERIC or e.dtype.startswith("dtype"):
            raise TFCheckpointError(self.prefix, f"{e.name} has dtype {e.dtype}, which this reader cannot load")
        if not 0 <= e.shard_id < self.header["num_shards"]:
            raise TFCheckpointError(self.prefix, f"{e.name} lives in shard {e.shard_id} of {self.header['num_shards']}")
        if any(d < 0 for d in e.shape):
            raise TFCheckpointError(self.prefix, f"{e.name} has an incomplete shape {e.shape}")

    def _decode(self, e: TensorEntry, buf: bytes, path) -> np.ndarray:
        dtype = _numpy_dtype(e.dtype)
        expected = int(np.prod(e.shape, dtype=np.int64)) * dtype.itemsize
        if len(buf) != e.size:
            raise TFCheckpointError(path, f"{e.name}: only {len(buf)} of its {e.size} bytes are in the file (truncated)")
        if e.size != expected:
            raise TFCheckpointError(path, f"{e.name}: {e.size} bytes stored, {expected} expected for {e.dtype}{list(e.shape)}")
        if self.verify and crc32c(buf) != unmask_crc(e.crc32c):
            raise TFCheckpointError(path, f"{e.name}: crc32c mismatch (the data file is corrupt)")
        order = "<" if self.header["endianness"] == "little" else ">"
        array = np.frombuffer(buf, dtype.newbyteorder(order) if dtype.itemsize > 1 else dtype)
        return array.astype(dtype, copy=True).reshape(e.shape)


def list_variables(prefix) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{variable name: (dtype name, shape)} of a TF checkpoint, without reading tensor data."""
    return CheckpointReader(prefix).variables()


def load_checkpoint(prefix, names: Iterable[str] | None = None, *, verify: bool = True) -> dict[str, np.ndarray]:
    """{variable name: array} of a TF checkpoint (all numeric tensors, or only `names`)."""
    reader = CheckpointReader(prefix, verify=verify)
    if names is None:
        names = [n for n, e in reader.entries.items() if e.dtype not in _NOT_NUMERIC and not e.sliced]
    return reader.get_tensors(names)


# ----------------------------------------------------------------------------- TensorFlow


class TensorFlowReader:
    """`CheckpointReader`'s interface over `tf.train.load_checkpoint` (needs TensorFlow)."""

    def __init__(self, path):
        try:
            import tensorflow as tf
        except ImportError:
            raise TFCheckpointError(path, "--reader tf needs TensorFlow (pip install 'hdrjax[tf]'); the default reader does not") from None
        self.prefix = resolve_prefix(path)
        try:
            self._reader = tf.train.load_checkpoint(str(self.prefix))
        except Exception as e:  # TF raises its own error types (NotFoundError, DataLossError…)
            raise TFCheckpointError(self.prefix, f"TensorFlow cannot read it: {e}") from None
        shapes = self._reader.get_variable_to_shape_map()
        dtypes = self._reader.get_variable_to_dtype_map()
        self.entries = {
            n: TensorEntry(name=n, dtype=DTYPES.get(int(dtypes[n].as_datatype_enum), dtypes[n].name), shape=tuple(int(d) for d in shapes[n]))
            for n in shapes
        }
        self.header = {"num_shards": None, "endianness": "little", "producer": None, "min_consumer": None}

    def variables(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """{name: (dtype name, shape)} of every tensor."""
        return {name: (e.dtype, e.shape) for name, e in self.entries.items()}

    def get_tensors(self, names: Iterable[str]) -> dict[str, np.ndarray]:
        """{name: array} for `names`."""
        out = {}
        for n in names:
            if n not in self.entries:
                raise TFCheckpointError(self.prefix, f"has no variable {n!r}")
            out[n] = np.array(self._reader.get_tensor(n))
        return out

    def get_tensor(self, name: str) -> np.ndarray:
        """The tensor `name` as a numpy array."""
        return self.get_tensors([name])[name]


def tensorflow_reader(prefix) -> TensorFlowReader:
    """A reader with `CheckpointReader`'s interface that uses TensorFlow itself."""
    return TensorFlowReader(prefix)


def open_reader(prefix, reader: str = "numpy", *, verify: bool = True):
    """`CheckpointReader` ("numpy", the default) or `TensorFlowReader` ("tf") of a checkpoint."""
    if reader == "numpy":
        return CheckpointReader(prefix, verify=verify)
    if reader == "tf":
        return TensorFlowReader(prefix)
    raise ValueError(f"reader must be 'numpy' or 'tf', got {reader!r}")


__all__ = [
    "CheckpointReader",
    "TFCheckpointError",
    "TensorEntry",
    "TensorFlowReader",
    "crc32c",
    "list_variables",
    "load_checkpoint",
    "mask_crc",
    "open_reader",
    "read_table",
    "resolve_prefix",
    "tensorflow_reader",
    "unmask_crc",
]
