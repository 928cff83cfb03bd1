"""TF1 checkpoint reader (hdrjax.tools.tf_checkpoint) and importer (hdrjax.tools.import_tf1).

The reader is checked against bytes written by real TensorFlow (tests/data/tf1_tiny, made
by make_fixture.py there; TF is not needed to run these tests).  The full-model import
tests write checkpoints with `write_bundle` below, the inverse of the reader, which is
valid because the writer is itself checked against TF's bytes (same entries and CRCs).
"""
import hashlib
import importlib.util
import json
import pathlib
import shutil
import struct

import numpy as np
import pytest

from hdrjax.weights import loading
from hdrjax.models import build
from hdrjax.models.build import NETWORKS
from hdrjax.tools import import_tf1, tf_checkpoint
from hdrjax.tools.tf_checkpoint import TFCheckpointError, crc32c, mask_crc, unmask_crc

FIXTURE = pathlib.Path(__file__).parent / "data" / "tf1_tiny"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())

# Reference-spec parameter counts (trainable, from the authors' code), per network.
REFERENCE_PARAMS = {
    "dequantization": 1_999_779,  # §2.1
    "linearization": 1_195_328 + 512 * 11 + 11,  # §2.2.2 trunk + §2.2.3 dense head
    "hallucination": 24_569_118,  # §2.3
    "refinement": 1_266_947,  # §2.4
}


# ----------------------------------------------------------------------------- bundle writer

_DTYPE_ENUM = {v: k for k, v in tf_checkpoint.DTYPES.items()}


def _varint(v: int) -> bytes:
    v &= (1 << 64) - 1  # negative int64 -> two's complement, as protobuf does
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _field(number: int, value) -> bytes:
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    return _varint(number << 3) + _varint(value)


def _entry_proto(dtype: str, shape, shard: int, offset: int, size: int, crc: int) -> bytes:
    dims = b"".join(_field(2, _field(1, d) if d else b"") for d in shape)
    msg = _field(1, _DTYPE_ENUM[dtype]) + _field(2, dims)
    if shard:
        msg += _field(3, shard)  # proto3: zero values are not written
    if offset:
        msg += _field(4, offset)
    if size:
        msg += _field(5, size)
    return msg + _varint(6 << 3 | 5) + struct.pack("<I", crc)


def _block(entries, restart_interval: int = 16) -> bytes:
    out, restarts, prev = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        shared = 0
        if i % restart_interval == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(key), len(prev)) and key[shared] == prev[shared]:
                shared += 1
        out += _varint(shared) + _varint(len(key) - shared) + _varint(len(value)) + key[shared:] + value
        prev = key
    restarts = restarts or [0]
    return bytes(out) + b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))


def _raw_block(contents: bytes, compression: int = 0) -> bytes:
    trailer = bytes([compression])
    return contents + trailer + struct.pack("<I", mask_crc(crc32c(contents + trailer)))


def write_bundle(prefix, tensors, *, num_shards=1, compression=0, restart_interval=16):
    """Write {name: array} as a TF tensor-bundle V2 checkpoint (the inverse of the reader)."""
    prefix = pathlib.Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    shards = [bytearray() for _ in range(num_shards)]
    records = []
    for i, name in enumerate(sorted(tensors)):
        a = np.asarray(tensors[name])
        raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
        shard = i % num_shards
        offset = len(shards[shard])
        shards[shard] += raw
        proto = _entry_proto(a.dtype.name, a.shape, shard, offset, len(raw), mask_crc(crc32c(raw)))
        records.append((name.encode(), proto))
    header = _field(1, num_shards) + _field(3, _field(1, 1))  # num_shards, version{producer: 1}
    records.insert(0, (b"", header))
    for k, data in enumerate(shards):
        pathlib.Path(f"{prefix}.data-{k:05d}-of-{num_shards:05d}").write_bytes(bytes(data))
    data_block = _raw_block(_block(records, restart_interval), compression)
    meta_block = _raw_block(_block([]))
    index_block = _raw_block(_block([(records[-1][0], _varint(0) + _varint(len(data_block) - 5))]))
    meta_handle = _varint(len(data_block)) + _varint(len(meta_block) - 5)
    index_handle = _varint(len(data_block) + len(meta_block)) + _varint(len(index_block) - 5)
    footer = (meta_handle + index_handle).ljust(40, b"\0") + struct.pack("<Q", tf_checkpoint.TABLE_MAGIC)
    pathlib.Path(f"{prefix}.index").write_bytes(data_block + meta_block + index_block + footer)
    return prefix


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()).hexdigest()


# ----------------------------------------------------------------------------- crc32c


def test_crc32c_known_values_and_lanes():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 test vector
    assert crc32c(b"") == 0
    rng = np.random.default_rng(1)
    for n in (4095, 4096, 4097, 4099, 65536 + 3, 300_001):
        data = rng.integers(0, 256, n, dtype=np.uint8)
        plain = tf_checkpoint._crc_update_scalar(0xFFFFFFFF, data.tobytes()) ^ 0xFFFFFFFF
        assert crc32c(data) == plain, n  # the lane-parallel path equals the byte loop
        assert crc32c(data[1000:], crc32c(data[:1000])) == plain  # continuation
    for v in (0, 1, 0xFFFFFFFF, 0xE3069283):
        assert unmask_crc(mask_crc(v)) == v
    assert mask_crc(0) != 0


# ----------------------------------------------------------------------------- reader vs real TF bytes


def test_fixture_is_small():
    assert sum(p.stat().st_size for p in FIXTURE.iterdir()) < 50_000


@pytest.mark.parametrize("spec", ["model.ckpt", "model.ckpt.index", "model.ckpt.data-00000-of-00001", "."])
def test_list_variables_matches_tensorflow(spec):
    listed = tf_checkpoint.list_variables(FIXTURE / spec)
    want = {n: (v["dtype"], tuple(v["shape"])) for n, v in EXPECTED["variables"].items()}
    assert listed == want
    assert listed["global_step"] == ("int64", ())
    assert listed["Dequantization_Net/conv2d/kernel/Adam"] == ("float32", (3, 3, 3, 4))


def test_load_checkpoint_values_match_tensorflow():
    values = tf_checkpoint.load_checkpoint(FIXTURE / "model.ckpt")
    numeric = {n for n, v in EXPECTED["variables"].items() if v["dtype"] != "string"}
    assert set(values) == numeric  # the string tensor is listed but not loaded
    for name in numeric:
        spec = EXPECTED["variables"][name]
        a = values[name]
        assert a.dtype == np.dtype(spec["dtype"]) and a.shape == tuple(spec["shape"]), name
        assert _sha(a) == spec["sha256"], name
        if "values" in spec:
            np.testing.assert_array_equal(a.reshape(-1), np.asarray(spec["values"], a.dtype))
    assert values["global_step"] == 123456789012  # > 2^32
    assert values["misc/half"].dtype == np.float16
    assert values["misc/empty"].shape == (0, 3)
    reader = tf_checkpoint.CheckpointReader(FIXTURE)
    assert reader.header["num_shards"] == 1 and reader.header["endianness"] == "little"
    with pytest.raises(TFCheckpointError, match="misc/label has dtype string"):
        reader.get_tensor("misc/label")
    with pytest.raises(TFCheckpointError, match="no variable 'nope'"):
        reader.get_tensor("nope")


def test_tf_kernels_are_hwio_like_flax():
    """The kernel TF convolved with is used by flax.linen.Conv as stored: no transpose."""
    import flax.linen as nn
    import jax.numpy as jnp

    values = tf_checkpoint.load_checkpoint(FIXTURE, [EXPECTED["conv"]["kernel"], EXPECTED["conv"]["bias"]])
    kernel, bias = values[EXPECTED["conv"]["kernel"]], values[EXPECTED["conv"]["bias"]]
    x = jnp.asarray(EXPECTED["conv"]["input"], jnp.float32)
    for stride, key in ((1, "same_stride1"), (2, "same_stride2")):
        conv = nn.Conv(4, (3, 3), strides=stride, padding="SAME")
        y = conv.apply({"params": {"kernel": kernel, "bias": bias}}, x)
        np.testing.assert_allclose(np.asarray(y), np.asarray(EXPECTED["conv"][key]), rtol=1e-5, atol=1e-5)


def test_writer_reproduces_tensorflow_entries(tmp_path):
    """Our test writer stores the fixture's tensors with the same dtype/shape/size/crc as TF."""
    tf_reader = tf_checkpoint.CheckpointReader(FIXTURE)
    values = tf_checkpoint.load_checkpoint(FIXTURE)
    ours = tf_checkpoint.CheckpointReader(write_bundle(tmp_path / "model.ckpt", values))
    for name, value in values.items():
        a, b = tf_reader.entries[name], ours.entries[name]
        assert (a.dtype, a.shape, a.size, a.crc32c) == (b.dtype, b.shape, b.size, b.crc32c), name
        np.testing.assert_array_equal(ours.get_tensor(name), value)


def test_tensorflow_reader_agrees():
    """Where TensorFlow is installed (`pip install hdrjax[tf]`), its reader gives the same tensors."""
    pytest.importorskip("tensorflow")
    ours, theirs = tf_checkpoint.open_reader(FIXTURE), tf_checkpoint.open_reader(FIXTURE, "tf")
    assert theirs.variables() == ours.variables()
    for name, entry in ours.entries.items():
        if entry.dtype != "string":
            np.testing.assert_array_equal(theirs.get_tensor(name), ours.get_tensor(name))


# ----------------------------------------------------------------------------- reader errors and paths


def _copy_fixture(tmp_path):
    d = tmp_path / "ckpt"
    shutil.copytree(FIXTURE, d, ignore=shutil.ignore_patterns("*.py", "*.json"))
    return d


def test_corrupt_data_fails_crc(tmp_path):
    d = _copy_fixture(tmp_path)
    entry = tf_checkpoint.CheckpointReader(d).entries["Hallucination_Net/encoder/h1/conv_1/W_conv2d"]
    data = bytearray((d / "model.ckpt.data-00000-of-00001").read_bytes())
    data[entry.offset + 100] ^= 0x01
    (d / "model.ckpt.data-00000-of-00001").write_bytes(bytes(data))
    with pytest.raises(TFCheckpointError, match="W_conv2d: crc32c mismatch"):
        tf_checkpoint.load_checkpoint(d)
    # verify=False reads it anyway (and other tensors stay intact)
    assert tf_checkpoint.load_checkpoint(d, verify=False)["Dequantization_Net/conv2d/bias"].shape == (4,)


def test_corrupt_or_foreign_index(tmp_path):
    d = _copy_fixture(tmp_path)
    index = bytearray((d / "model.ckpt.index").read_bytes())
    index[10] ^= 0x20
    (d / "model.ckpt.index").write_bytes(bytes(index))
    with pytest.raises(TFCheckpointError, match="crc32c check"):
        tf_checkpoint.list_variables(d)
    (d / "model.ckpt.index").write_text("model_checkpoint_path: nothing to see here\n" * 3)
    with pytest.raises(TFCheckpointError, match="not a readable TF checkpoint index"):
        tf_checkpoint.list_variables(d / "model.ckpt")


def test_compressed_block_is_refused(tmp_path):
    prefix = write_bundle(tmp_path / "model.ckpt", {"a": np.ones(3, np.float32)}, compression=1)
    with pytest.raises(TFCheckpointError, match="snappy-compressed"):
        tf_checkpoint.list_variables(prefix)


def test_missing_and_truncated_files(tmp_path):
    with pytest.raises(TFCheckpointError, match="no such checkpoint"):
        tf_checkpoint.list_variables(tmp_path / "absent" / "model.ckpt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TFCheckpointError, match="no TF checkpoint"):
        tf_checkpoint.list_variables(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(TFCheckpointError, match="not a TF checkpoint"):
        tf_checkpoint.list_variables(tmp_path / "notes.txt")
    d = _copy_fixture(tmp_path)
    data = d / "model.ckpt.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(TFCheckpointError, match="truncated"):
        tf_checkpoint.load_checkpoint(d)
    data.unlink()
    with pytest.raises(TFCheckpointError, match="data shard is missing"):
        tf_checkpoint.load_checkpoint(d)


def test_directory_resolution(tmp_path):
    a = {"x": np.arange(3, dtype=np.float32)}
    write_bundle(tmp_path / "model.ckpt-10", a)
    write_bundle(tmp_path / "model.ckpt-20", {"x": np.arange(5, dtype=np.float32)})
    with pytest.raises(TFCheckpointError, match="several checkpoints"):
        tf_checkpoint.resolve_prefix(tmp_path)
    # The authors' state files name paths on their machine: the file name in this folder wins.
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "/home/someone/logs/model.ckpt-10"\n')
    assert tf_checkpoint.resolve_prefix(tmp_path) == tmp_path / "model.ckpt-10"
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-20"\n')
    assert tf_checkpoint.list_variables(tmp_path) == {"x": ("float32", (5,))}
    (tmp_path / "model.ckpt-10.meta").write_bytes(b"graph")  # TF1 saves the graph beside it
    assert tf_checkpoint.resolve_prefix(tmp_path / "model.ckpt-10.meta") == tmp_path / "model.ckpt-10"


def test_shards_dtypes_and_prefix_compression(tmp_path):
    import ml_dtypes

    rng = np.random.default_rng(2)
    tensors = {f"scope/layer_{i:03d}/kernel": rng.standard_normal((i % 4 + 1, 3)).astype(np.float32) for i in range(40)}
    tensors.update(
        half=np.array([1.5, -2.0], np.float16),
        bf16=np.array([0.25, 3.0], ml_dtypes.bfloat16),
        f64=np.array([np.pi]),
        i8=np.array([-3, 4], np.int8),
        u16=np.array([65535], np.uint16),
        flags=np.array([[True, False]]),
        scalar=np.float32(7.0),
        big=rng.standard_normal(5000).astype(np.float32),  # > 4096 bytes: the lane-parallel crc
    )
    prefix = write_bundle(tmp_path / "m.ckpt", tensors, num_shards=3, restart_interval=4)
    reader = tf_checkpoint.CheckpointReader(prefix)
    assert reader.header["num_shards"] == 3
    assert {e.shard_id for e in reader.entries.values()} == {0, 1, 2}
    loaded = tf_checkpoint.load_checkpoint(prefix)
    assert set(loaded) == set(tensors)
    for name, value in tensors.items():
        value = np.asarray(value)
        assert loaded[name].dtype == value.dtype and loaded[name].shape == value.shape, name
        np.testing.assert_array_equal(loaded[name], value)
    assert loaded["bf16"].dtype.name == "bfloat16"


# ----------------------------------------------------------------------------- name map


def test_name_map_matches_the_reference():
    name_map = import_tf1.tf1_variable_map()
    by_net = {net: {n: p for n, p in name_map.items() if p[1] == net} for net in import_tf1.NETWORKS}
    assert {net: len(v) for net, v in by_net.items()} == {
        "dequantization": 38, "linearization": 93, "hallucination": 80, "refinement": 38,
    }
    for name, path in name_map.items():
        assert import_tf1.network_of(name) == path[1] and not import_tf1.is_optimizer_slot(name)
    # Spot checks written out by hand from the reference's scopes (§2.1-§2.5).
    assert name_map["Dequantization_Net/conv2d_18/kernel"] == ("params", "dequantization", "conv2d_18", "kernel")
    assert name_map["Refinement_Net/conv2d/bias"] == ("params", "refinement", "conv2d", "bias")
    assert name_map["crf_feature_net/conv1/biases"] == ("params", "linearization", "crf_feature_net", "conv1", "bias")
    assert name_map["crf_feature_net/res3a_branch2a/weights"][-2:] == ("res3a_branch2a", "kernel")
    assert name_map["crf_feature_net/bn2b_branch2c/BatchNorm/gamma"] == (
        "params", "linearization", "crf_feature_net", "bn2b_branch2c", "scale")
    assert name_map["crf_feature_net/bn_conv1/BatchNorm/moving_variance"] == (
        "batch_stats", "linearization", "crf_feature_net", "bn_conv1", "var")
    assert name_map["ae_invcrf_decode_net/dense/kernel"] == (
        "params", "linearization", "ae_invcrf_decode_net", "dense", "kernel")
    assert name_map["Hallucination_Net/encoder/h5/conv_3/W_conv2d"] == ("params", "hallucination", "encoder", "conv5_3", "kernel")
    assert name_map["Hallucination_Net/decoder/h3/decon2d/batch_norm_dc/moving_mean"] == (
        "batch_stats", "hallucination", "decoder_h3_decon2d_batch_norm_dc", "mean")
    assert name_map["Hallucination_Net/encoder/h6/batch_norm/beta"] == (
        "params", "hallucination", "encoder_h6_batch_norm", "bias")
    for slot in ("Dequantization_Net/conv2d/kernel/Adam", "Hallucination_Net/encoder/h6/batch_norm/beta/Adam_1"):
        assert import_tf1.is_optimizer_slot(slot)
    assert import_tf1.network_of("beta1_power") is None and import_tf1.network_of("global_step") is None


# ----------------------------------------------------------------------------- full-model import


@pytest.fixture(scope="module")
def model_setup(tmp_path_factory):
    """(model, shapes, invemor path): SingleHDR with a small synthetic invEMoR-format basis."""
    from hdrjax.camera import basis as basis_lib
    from hdrjax.models import SingleHDR

    d = tmp_path_factory.mktemp("basis")
    x = np.linspace(0.0, 1.0, 1024)
    hinv = np.stack([0.05 * np.sin(np.pi * (k + 1) * x) for k in range(11)], axis=1)
    invemor = d / "invemor.npz"
    np.savez(invemor, g0=x ** 0.5, hinv=hinv)
    model = SingleHDR(basis=basis_lib.load_invemor(invemor))
    return model, build.flat_variable_shapes(model), invemor


def _tf_values(shapes, networks, seed):
    """Random TF-named tensors for `networks`, scaled so the composed net stays finite."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, path in import_tf1.tf1_variable_map(networks).items():
        shape = shapes[path]
        if path[-1] == "var":
            v = rng.uniform(0.5, 1.5, shape)
        elif path[-1] == "scale":
            v = rng.uniform(0.8, 1.2, shape)
        elif path[-1] == "kernel":
            v = rng.standard_normal(shape) * (0.5 / np.sqrt(np.prod(shape[:-1])))
        else:
            v = rng.standard_normal(shape) * 0.01
        out[name] = v.astype(np.float32)
    return out


SLOT_MAX_SIZE = 600_000


def _with_slots(values):
    """Add Adam slots `…/Adam`, `…/Adam_1` for trainable variables, plus optimiser scalars.

    Only variables of at most SLOT_MAX_SIZE elements get slots (all but the big 3×3×512×512
    convs) to keep the files small; the importer's slot rule is by name, not by size.
    """
    out = dict(values)
    for name, v in values.items():
        if "moving_" in name or v.size > SLOT_MAX_SIZE:
            continue
        out[name + "/Adam"] = np.full_like(v, 1e-3)
        out[name + "/Adam_1"] = np.full_like(v, 2e-3)
    out.update(beta1_power=np.float32(0.9**10), beta2_power=np.float32(0.999**10), global_step=np.int64(499_999))
    return out


@pytest.fixture(scope="module")
def tf1_checkpoints(model_setup, tmp_path_factory):
    """Stage checkpoints (deq / lin / hal, each with foreign untrained variables) and a joint one."""
    _, shapes, _ = model_setup
    d = tmp_path_factory.mktemp("tf1")
    stage = {net: _tf_values(shapes, [net], seed=i) for i, net in enumerate(import_tf1.NETWORKS)}
    deq, lin, hal, ref = (stage[n] for n in import_tf1.NETWORKS)
    untrained_lin = {n: -v for n, v in lin.items()}
    untrained_deq = {n: -v for n, v in deq.items()}
    paths = {
        "dequantization": write_bundle(d / "ckpt_deq" / "model.ckpt", _with_slots({**deq, **untrained_lin})),
        "linearization": write_bundle(d / "ckpt_lin" / "model.ckpt", _with_slots({**lin, **untrained_deq})),
        "hallucination": write_bundle(d / "ckpt_hal" / "model.ckpt", _with_slots(hal)),
    }
    # Joint: deq / lin differ from the stage files (to see which file a net came from); hal shared.
    joint = {**untrained_deq, **untrained_lin, **hal, **ref}
    paths["joint"] = write_bundle(d / "ckpt_joint" / "model.ckpt", _with_slots(joint))
    return paths, stage, joint


def _assert_placed(variables, tf_values, networks):
    import flax

    flat = flax.traverse_util.flatten_dict(variables)
    for name, path in import_tf1.tf1_variable_map(networks).items():
        np.testing.assert_array_equal(flat[path], tf_values[name], err_msg=name)


def test_import_stage_checkpoints(model_setup, tf1_checkpoints):
    import flax

    model, shapes, _ = model_setup
    paths, stage, _ = tf1_checkpoints
    lines = []
    sources = {net: paths[net] for net in import_tf1.NETWORKS[:3]}
    variables, imported_from = import_tf1.import_variables(sources, model, shapes=shapes, log=lines.append)
    flat = flax.traverse_util.flatten_dict(variables)
    assert set(flat) == set(shapes)  # every model variable has a value …
    for path, value in flat.items():
        assert value.shape == shapes[path] and value.dtype == np.float32, path
    for net in import_tf1.NETWORKS[:3]:  # … from its own stage file, at the right place
        _assert_placed(variables, stage[net], [net])
        assert imported_from[net] == str(paths[net])
    assert set(variables["batch_stats"]) == {"linearization", "hallucination"}
    # No joint checkpoint: the Refinement-Net is the identity (last conv zero).
    assert imported_from["refinement"].startswith("identity")
    assert not np.any(flat[("params", "refinement", "conv2d_18", "kernel")])
    assert not np.any(flat[("params", "refinement", "conv2d_18", "bias")])
    assert np.any(flat[("params", "refinement", "conv2d", "kernel")])
    assert any("optimiser slots skipped" in line for line in lines)
    assert any("beta1_power" in line and "ignored" in line for line in lines)
    # Every parameter counts toward the reference totals (params only, not BN statistics).
    for net, n in REFERENCE_PARAMS.items():
        assert sum(int(np.prod(v.shape)) for p, v in flat.items() if p[0] == "params" and p[1] == net) == n, net


def test_import_joint_and_override(model_setup, tf1_checkpoints):
    model, shapes, _ = model_setup
    paths, stage, joint = tf1_checkpoints
    variables, imported_from = import_tf1.import_variables({n: paths["joint"] for n in import_tf1.NETWORKS}, model, shapes=shapes)
    _assert_placed(variables, joint, import_tf1.NETWORKS)
    assert set(imported_from.values()) == {str(paths["joint"])}
    # A stage checkpoint given with the joint one replaces that network only.
    sources = {**{n: paths["joint"] for n in import_tf1.NETWORKS}, "dequantization": paths["dequantization"]}
    variables, _ = import_tf1.import_variables(sources, model, shapes=shapes)
    _assert_placed(variables, stage["dequantization"], ["dequantization"])
    _assert_placed(variables, joint, ["linearization", "hallucination", "refinement"])


def _deq_checkpoint(tmp_path, shapes, edit):
    values = _with_slots(_tf_values(shapes, ["dequantization"], seed=5))
    edit(values)
    return tf_checkpoint.CheckpointReader(write_bundle(tmp_path / "model.ckpt", values))


def test_import_network_errors(model_setup, tmp_path):
    _, shapes, _ = model_setup

    def wrong_shape(v):
        v["Dequantization_Net/conv2d_5/kernel"] = np.zeros((3, 3, 64, 32), np.float32)

    with pytest.raises(import_tf1.TF1ImportError, match=r"conv2d_5/kernel has shape \[3, 3, 64, 32\].*needs \[3, 3, 64, 64\]"):
        import_tf1.import_network(_deq_checkpoint(tmp_path / "a", shapes, wrong_shape), "dequantization", shapes)

    def drop(v):
        del v["Dequantization_Net/conv2d_18/bias"], v["Dequantization_Net/conv2d_3/kernel"]

    with pytest.raises(import_tf1.TF1ImportError, match="2 dequantization variables are missing: .*conv2d_18/bias"):
        import_tf1.import_network(_deq_checkpoint(tmp_path / "b", shapes, drop), "dequantization", shapes)

    def extra(v):
        v["Dequantization_Net/conv2d_19/kernel"] = np.zeros((3, 3, 3, 3), np.float32)
        v["Dequantization_Net/conv2d_19/kernel/Adam"] = np.zeros((3, 3, 3, 3), np.float32)

    with pytest.raises(import_tf1.TF1ImportError, match="1 dequantization variables have no place in the model: Dequantization_Net/conv2d_19/kernel$"):
        import_tf1.import_network(_deq_checkpoint(tmp_path / "c", shapes, extra), "dequantization", shapes)

    def int_kernel(v):
        v["Dequantization_Net/conv2d/bias"] = np.zeros(16, np.int32)

    with pytest.raises(import_tf1.TF1ImportError, match="conv2d/bias has dtype int32"):
        import_tf1.import_network(_deq_checkpoint(tmp_path / "d", shapes, int_kernel), "dequantization", shapes)
    # A checkpoint of another network: everything missing, with a hint.
    with pytest.raises(import_tf1.TF1ImportError, match="is it the right checkpoint"):
        import_tf1.import_network(_deq_checkpoint(tmp_path / "e", shapes, lambda v: None), "hallucination", shapes)
    # float16 weights are accepted and widened.
    values, summary = import_tf1.import_network(
        _deq_checkpoint(tmp_path / "f", shapes, lambda v: v.update({k: x.astype(np.float16) for k, x in v.items() if k.endswith("bias")})),
        "dequantization", shapes)
    assert summary["variables"] == 38 and summary["slots_skipped"] == 76
    assert all(a.dtype == np.float32 for a in values.values())


def test_coverage_check_names_unmapped_variables(model_setup):
    _, shapes, _ = model_setup
    name_map = dict(import_tf1.tf1_variable_map())
    del name_map["crf_feature_net/bn3b_branch2c/BatchNorm/moving_mean"]
    with pytest.raises(import_tf1.TF1ImportError, match="without a TF1 name: batch_stats/linearization/crf_feature_net/bn3b_branch2c/mean"):
        import_tf1.check_coverage(name_map, shapes, import_tf1.NETWORKS)


# ----------------------------------------------------------------------------- CLI


def _cli(capsys, *argv):
    rc = import_tf1.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _never_save(path, variables, config):
    raise AssertionError("save_variables must not be reached")


def test_cli_user_errors(capsys, tmp_path, monkeypatch, model_setup, tf1_checkpoints):
    from hdrjax.weights import checkpoints

    monkeypatch.setattr(checkpoints, "save_variables", _never_save, raising=False)
    _, _, invemor = model_setup
    paths, _, _ = tf1_checkpoints
    stage = ["--deq", paths["dequantization"], "--lin", paths["linearization"], "--hal", paths["hallucination"]]

    rc, _, err = _cli(capsys, "--deq", paths["dequantization"], "--invemor", invemor, "--out", tmp_path / "o")
    assert rc == 1 and "missing --lin --hal" in err
    rc, _, err = _cli(capsys, *stage, "--out", tmp_path / "o")
    assert rc == 1 and "--invemor is required" in err and "alex04072000/SingleHDR" in err
    rc, _, err = _cli(capsys, *stage, "--invemor", tmp_path / "nope.txt", "--out", tmp_path / "o")
    assert rc == 1 and "nope.txt: no such file" in err
    rc, _, err = _cli(capsys, "--joint", tmp_path / "absent" / "model.ckpt", "--invemor", invemor, "--out", tmp_path / "o")
    assert rc == 1 and "no such checkpoint" in err
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    rc, _, err = _cli(capsys, "--joint", tmp_path / "notes.txt", "--invemor", invemor, "--out", tmp_path / "o")
    assert rc == 1 and "not a TF checkpoint" in err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    rc, _, err = _cli(capsys, *stage, "--invemor", invemor, "--out", tmp_path / "full")
    assert rc == 1 and "already exists" in err
    if importlib.util.find_spec("tensorflow") is None:
        rc, _, err = _cli(capsys, "--joint", paths["joint"], "--invemor", invemor, "--out", tmp_path / "o", "--reader", "tf")
        assert rc == 1 and "--reader tf needs TensorFlow" in err
    # A stage file given for the wrong network.
    rc, _, err = _cli(capsys, "--deq", paths["hallucination"], "--lin", paths["linearization"],
                      "--hal", paths["hallucination"], "--invemor", invemor, "--out", tmp_path / "o")
    assert rc == 1 and "dequantization variables are missing" in err
    for e in err.strip().splitlines():  # one line each, no traceback
        assert e.startswith("error:")
    assert not (tmp_path / "o").exists()


def test_cli_writes_config_and_basis(capsys, tmp_path, monkeypatch, model_setup, tf1_checkpoints):
    """The CLI hands save_variables the variables and a config that rebuilds the model."""
    from hdrjax.weights import checkpoints
    from hdrjax.models.build import build_model

    _, shapes, invemor = model_setup
    paths, _, joint = tf1_checkpoints
    saved = {}

    def fake_save(path, variables, config):
        pathlib.Path(path).mkdir(parents=True)
        saved.update(path=pathlib.Path(path), variables=variables, config=config)

    monkeypatch.setattr(checkpoints, "save_variables", fake_save, raising=False)
    out = tmp_path / "weights"
    rc, stdout, err = _cli(capsys, "--joint", paths["joint"], "--invemor", invemor, "--out", out)
    assert rc == 0, err
    assert "wrote" in stdout and saved["path"] == out
    _assert_placed(saved["variables"], joint, import_tf1.NETWORKS)
    config = saved["config"]
    assert config.model.histogram_layout == "reference" and config.model.basis_components == 11
    assert config.imported_from.refinement == str(paths["joint"])
    assert config.imported_from.invemor == str(invemor)
    basis_copy = pathlib.Path(config.crf.invemor)
    assert basis_copy.parent == out and basis_copy.read_bytes() == invemor.read_bytes()
    assert build.flat_variable_shapes(build_model(config)) == shapes
    # All four networks from the jointly fine-tuned checkpoint: stage joint, output after refinement.
    stored = checkpoints.config_to_json(config)
    assert stored["stage"] == "joint" and "output_stage" not in stored
    assert loading.stages_for_checkpoint(stored) == NETWORKS


def test_three_stage_import_is_stored_as_the_hallucination_output(capsys, tmp_path, monkeypatch, model_setup,
                                                                  tf1_checkpoints):
    """The authors' Deq/Lin/Hal checkpoints (test_real.py) have no trained Refinement-Net: the
    import says so, and predict / evaluate stop after hallucination by default."""
    from hdrjax.weights import checkpoints

    _, _, invemor = model_setup
    paths, _, _ = tf1_checkpoints
    saved = {}

    def fake_save(path, variables, config):
        pathlib.Path(path).mkdir(parents=True)
        saved.update(config=checkpoints.config_to_json(config))

    monkeypatch.setattr(checkpoints, "save_variables", fake_save, raising=False)
    rc, _, err = _cli(capsys, "--deq", paths["dequantization"], "--lin", paths["linearization"],
                      "--hal", paths["hallucination"], "--invemor", invemor, "--out", tmp_path / "weights")
    assert rc == 0, err
    stored = saved["config"]
    assert stored["stage"] == "hallucination" and stored["output_stage"] == "hallucination"
    assert stored["imported_from"]["refinement"].startswith("identity")
    assert loading.stages_for_checkpoint(stored) == NETWORKS[:3]
    assert "stage hallucination, imported TF1 weights" in loading.describe_checkpoint("weights", stored, None)
    assert loading.checkpoint_warning(stored, None) is None  # no step count: nothing to warn about


@pytest.mark.slow
def test_end_to_end_apply(capsys, tmp_path, model_setup, tf1_checkpoints):
    """Imported variables run through SingleHDR.apply, in memory and after save/load."""
    import jax
    import jax.numpy as jnp

    from hdrjax.weights import checkpoints

    model, shapes, invemor = model_setup
    paths, _, _ = tf1_checkpoints
    variables, _ = import_tf1.import_variables({n: paths[n] for n in import_tf1.NETWORKS[:3]}, model, shapes=shapes)
    ldr = jax.random.uniform(jax.random.key(0), (1, 32, 32, 3))
    out = model.apply(jax.tree.map(jnp.asarray, variables), ldr)
    for field in ("dequantized", "linear", "hallucinated", "refined"):
        image = np.asarray(getattr(out, field))
        assert image.shape == (1, 32, 32, 3) and np.all(np.isfinite(image)), field
    # The identity Refinement-Net returns the hallucinated image (test_real.py's output).
    np.testing.assert_allclose(np.asarray(out.refined), np.asarray(out.hallucinated), atol=1e-6)

    target = tmp_path / "weights"
    rc, _, err = _cli(capsys, "--deq", paths["dequantization"], "--lin", paths["linearization"],
                      "--hal", paths["hallucination"], "--invemor", invemor, "--out", target)
    assert rc == 0, err
    import ml_collections

    from hdrjax.models.build import build_model

    loaded, config, _ = checkpoints.load_inference_variables(target)
    config = ml_collections.ConfigDict(config)  # the stored config may come back as a dict

    reloaded = build_model(config).apply(jax.tree.map(jnp.asarray, dict(loaded)), ldr)
    np.testing.assert_allclose(np.asarray(reloaded.refined), np.asarray(out.refined), rtol=1e-6, atol=1e-6)

    # predict on the written import: described as such, output after hallucination.  The input
    # is not an image, so predict stops after loading and reporting (no network compiled).
    from hdrjax import predict

    (tmp_path / "broken.png").write_bytes(b"not a png")
    rc = predict.main(["--checkpoint", str(target), "--output", str(tmp_path / "o"), str(tmp_path / "broken.png")])
    err = capsys.readouterr().err
    assert rc == 1 and f"checkpoint {target} (step None, stage hallucination, imported TF1 weights)" in err, err
    assert "output after hallucination" in err and "warning:" not in err, err
