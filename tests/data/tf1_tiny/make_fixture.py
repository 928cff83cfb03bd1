"""Write the tiny TF1 checkpoint fixture of tests/test_import_tf1.py.  NEEDS TENSORFLOW.

    python tests/data/tf1_tiny/make_fixture.py        # in an environment with tensorflow(-cpu)

Builds a `tf.compat.v1` graph (graph mode, as the authors' TF 1.10 code) with a few variables
named and typed like the reference's (a Dequantization-Net conv, a Hallucination-Net encoder
kernel, a slim BatchNorm moving variance, Adam slots and beta powers from a real
`AdamOptimizer`, an int64 `global_step`, plus float16/float64/int32/bool/string/empty
tensors), assigns known values, and saves them with `tf.compat.v1.train.Saver` (tensor bundle
V2) as `model.ckpt.index` + `model.ckpt.data-00000-of-00001` (+ the `checkpoint` state file).
`expected.json` records each variable's dtype, shape, the sha256 of its little-endian bytes
and (small ones) its values, and the output of TF's conv2d on a fixed input with the saved
kernel (the layout check: TF kernels are HWIO, which Flax uses as is).

`tf.compat.v1.layers.conv2d` is not available with Keras 3 (TF >= 2.16), so the conv is
built as that layer builds it: a `kernel` variable of shape kernel_size + (in, out) and a
`bias`, applied with `tf.nn.conv2d` + `tf.nn.bias_add`.

The test never needs TensorFlow: it reads these files with hdrjax's own reader.
"""
import hashlib
import json
import os
import pathlib
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # after TF_CPP_MIN_LOG_LEVEL: it is read at import

OUT = pathlib.Path(__file__).resolve().parent


def main(out=OUT):
    tf.compat.v1.disable_eager_execution()
    rng = np.random.default_rng(20200614)  # CVPR 2020
    graph = tf.Graph()
    values = {}
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, 5, 5, 3], name="x")
        with tf.compat.v1.variable_scope("Dequantization_Net"):
            with tf.compat.v1.variable_scope("conv2d"):
                kernel = tf.compat.v1.get_variable("kernel", [3, 3, 3, 4], tf.float32)
                bias = tf.compat.v1.get_variable("bias", [4], tf.float32)
        y1 = tf.nn.bias_add(tf.nn.conv2d(x, kernel, [1, 1, 1, 1], "SAME"), bias)
        y2 = tf.nn.bias_add(tf.nn.conv2d(x, kernel, [1, 2, 2, 1], "SAME"), bias)
        with tf.compat.v1.variable_scope("Hallucination_Net/encoder/h1/conv_1"):
            w_vgg = tf.compat.v1.get_variable("W_conv2d", [3, 3, 3, 64], tf.float32)
        with tf.compat.v1.variable_scope("crf_feature_net/bn_conv1/BatchNorm"):
            tf.compat.v1.get_variable("moving_variance", [8], tf.float32, trainable=False)
        with tf.compat.v1.variable_scope("misc"):
            tf.compat.v1.get_variable("half", [2, 3], tf.float16, trainable=False)
            tf.compat.v1.get_variable("double", [2], tf.float64, trainable=False)
            zeros = tf.compat.v1.zeros_initializer()
            tf.compat.v1.get_variable("count", [3], tf.int32, trainable=False, initializer=zeros)
            tf.compat.v1.get_variable("flag", [2], tf.bool, trainable=False, initializer=zeros)
            tf.compat.v1.get_variable("empty", [0, 3], tf.float32, trainable=False)
            tf.compat.v1.get_variable("label", [], tf.string, trainable=False,
                                      initializer=tf.compat.v1.constant_initializer("singlehdr"))
        step = tf.compat.v1.train.get_or_create_global_step()
        loss = tf.reduce_sum(y1) + tf.reduce_sum(w_vgg)
        tf.compat.v1.train.AdamOptimizer(1e-4).minimize(loss, global_step=step)

        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for var in tf.compat.v1.global_variables():
                name = var.op.name
                shape = var.shape.as_list()
                dtype = var.dtype.base_dtype
                if dtype == tf.string:
                    continue  # keeps its initial value
                if dtype == tf.bool:
                    value = np.array([True, False])
                elif dtype.is_integer:
                    value = rng.integers(-(2**31), 2**31, size=shape).astype(dtype.as_numpy_dtype)
                    if name == "global_step":
                        value = np.array(123456789012, np.int64)  # > 2^32: exercises int64
                else:
                    value = (rng.standard_normal(shape) * 0.5).astype(dtype.as_numpy_dtype)
                var.load(value, sess)
                values[name] = value
            xv = rng.random((1, 5, 5, 3)).astype(np.float32)
            out1, out2 = sess.run([y1, y2], {x: xv})
            saver = tf.compat.v1.train.Saver(write_version=tf.compat.v1.train.SaverDef.V2)
            prefix = saver.save(sess, str(out / "model.ckpt"), write_meta_graph=False)
            values["misc/label"] = np.array(b"singlehdr", dtype=object)

    variables = {}
    for name, (dtype, shape) in sorted(_list(prefix).items()):
        entry = {"dtype": dtype, "shape": shape}
        if dtype != "string":
            v = np.ascontiguousarray(values[name])
            entry["sha256"] = hashlib.sha256(v.astype(v.dtype.newbyteorder("<")).tobytes()).hexdigest()
            if v.size <= 12:
                entry["values"] = v.reshape(-1).tolist()
        variables[name] = entry
    expected = {
        "tensorflow": tf.__version__,
        "prefix": "model.ckpt",
        "variables": variables,
        "conv": {
            "kernel": "Dequantization_Net/conv2d/kernel",
            "bias": "Dequantization_Net/conv2d/bias",
            "input": xv.tolist(),
            "same_stride1": out1.tolist(),
            "same_stride2": out2.tolist(),
        },
    }
    (out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    # The checkpoint state file names the prefix relative to this folder.
    (out / "checkpoint").write_text('model_checkpoint_path: "model.ckpt"\nall_model_checkpoint_paths: "model.ckpt"\n')
    print(f"wrote {prefix}.* and expected.json ({len(variables)} variables) with TensorFlow {tf.__version__}")


def _list(prefix):
    """{name: (dtype name, shape)} as TensorFlow itself reports them."""
    reader = tf.train.load_checkpoint(prefix)
    dtypes = reader.get_variable_to_dtype_map()
    return {n: (dtypes[n].name, list(s)) for n, s in reader.get_variable_to_shape_map().items()}


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
