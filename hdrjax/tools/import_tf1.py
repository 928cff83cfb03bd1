"""Convert the authors' TF1 checkpoints into an hdrjax checkpoint.

    python -m hdrjax.tools.import_tf1 --deq ckpt_deq/model.ckpt --lin ckpt_lin/model.ckpt \\
        --hal ckpt_hal/model.ckpt --invemor SingleHDR/invemor.txt --out weights/singlehdr
    python -m hdrjax.tools.import_tf1 --joint ckpt_deq_lin_hal_ref/model.ckpt \\
        --invemor SingleHDR/invemor.txt --out weights/singlehdr_ft

`--deq/--lin/--hal` are the three stage checkpoints of `test_real.py`, `--joint` the jointly
fine-tuned one of `test_real_refinement.py` (all four nets); a stage flag given with `--joint`
replaces that net.  Each checkpoint may hold other nets' variables: only the net's own scope
is read (`Dequantization_Net/`, `crf_feature_net/` + `ae_invcrf_decode_net/`,
`Hallucination_Net/`, `Refinement_Net/`), optimiser slots (`…/Adam`, `…/Adam_1`) are skipped,
and variables outside those scopes (`beta1_power`, `global_step`, …) are ignored.  Within a
scope every model variable must be found with the right shape and nothing else may be left
over, else the import stops with one line naming the variables.  Without `--joint` there is no
Refinement-Net: it is written as the identity (its last conv zeroed, so R = relu(A) = A,
exactly `test_real.py`'s output); the other layers keep a seeded Glorot init.  Such an import is
stored as stage "hallucination" with `output_stage: "hallucination"`, so predict and evaluate
report and use the hallucinated output; with `--joint` it is stage "joint" (output after refinement).

Names and layouts (docs/reference.md §2.5): TF1 kernels are HWIO like Flax `nn.Conv`
(`tf.layers.conv2d` and slim store kernel_size + (in, out)), so no array is transposed;
`weights|biases|kernel|bias|W_conv2d|b_conv2d` -> `kernel|bias`, BN `gamma|beta` ->
`scale|bias` (params) and `moving_mean|moving_variance` -> `mean|var` (batch_stats).

The inverse-EMoR basis (`invemor.txt`, in the root of github.com/alex04072000/SingleHDR) is
not in the checkpoints — the reference reads it from disk — and our built-in basis is a
different one, so `--invemor` is required; its path is stored in the written config
(`crf.invemor`) and a copy is kept beside the checkpoint.

Reading uses hdrjax's own tensor-bundle reader (`hdrjax.tools.tf_checkpoint`, no TensorFlow);
`--reader tf` reads with `tf.train.load_checkpoint` instead where TensorFlow is installed
(a cross-check).  Output: `hdrjax.weights.checkpoints.save_variables(out, variables, config)`.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import sys
from typing import Any, Mapping

import numpy as np

from hdrjax.errors import HdrjaxError
from hdrjax.models import build
from hdrjax.tools.tf_checkpoint import open_reader, resolve_prefix

NETWORKS = build.NETWORKS
# TF1 variable scopes of each network (the prefixes test_real.py's restorers filter on).
SCOPES = {
    "dequantization": ("Dequantization_Net/",),
    "linearization": ("crf_feature_net/", "ae_invcrf_decode_net/"),
    "hallucination": ("Hallucination_Net/",),
    "refinement": ("Refinement_Net/",),
}
FLAGS = {"dequantization": "--deq", "linearization": "--lin", "hallucination": "--hal", "refinement": "--joint"}
UNET_CONVS = 19  # §2.1 / §2.4: conv2d, conv2d_1 … conv2d_18
# Optimiser slot variables hang under the variable they belong to: `<var>/Adam`, `<var>/Adam_1`.
_SLOT = re.compile(r"/(Adam(_\d+)?|Momentum|RMSProp(_\d+)?|Adagrad|ExponentialMovingAverage)$")
INVEMOR_HINT = "invemor.txt is in the root of the authors' repository, github.com/alex04072000/SingleHDR"
INIT_SEED = 0  # Refinement-Net init when no joint checkpoint is given (its output is the identity anyway)

Path = tuple[str, ...]  # (collection, network, module…, leaf)


class TF1ImportError(HdrjaxError):
    """A checkpoint that does not fit the model (missing, extra or mis-shaped variables, bad flags)."""


# ----------------------------------------------------------------------------- name maps


def _unet_map(scope: str, net: str) -> dict[str, Path]:
    from hdrjax.models.layers import tf_layer_name

    out = {}
    for i in range(UNET_CONVS):
        layer = tf_layer_name(i)
        for leaf in ("kernel", "bias"):
            out[f"{scope}/{layer}/{leaf}"] = ("params", net, layer, leaf)
    return out


def _linearization_map() -> dict[str, Path]:
    from hdrjax.models.linearization import crf_feature_net_layers, feature_channels

    # caffe-tensorflow key -> (TF variable, collection, Flax leaf)
    leaves = {
        "weights": ("weights", "params", "kernel"),
        "biases": ("biases", "params", "bias"),
        "scale": ("BatchNorm/gamma", "params", "scale"),
        "offset": ("BatchNorm/beta", "params", "bias"),
        "mean": ("BatchNorm/moving_mean", "batch_stats", "mean"),
        "variance": ("BatchNorm/moving_variance", "batch_stats", "var"),
    }
    out = {}
    for layer, keys in crf_feature_net_layers(feature_channels("reference")).items():
        for key in keys:
            tf_leaf, collection, leaf = leaves[key]
            out[f"crf_feature_net/{layer}/{tf_leaf}"] = (collection, "linearization", "crf_feature_net", layer, leaf)
    for leaf in ("kernel", "bias"):
        out[f"ae_invcrf_decode_net/dense/{leaf}"] = ("params", "linearization", "ae_invcrf_decode_net", "dense", leaf)
    return out


def _hallucination_map() -> dict[str, Path]:
    from hdrjax.models.hallucination import tf1_variable_map as hal_map

    return {name: (collection, "hallucination") + tuple(path) for name, (collection, path) in hal_map().items()}


def tf1_variable_map(networks=NETWORKS) -> dict[str, Path]:
    """Reference TF1 variable name -> (collection, network, …, leaf) in SingleHDR's variables."""
    builders = {
        "dequantization": lambda: _unet_map("Dequantization_Net", "dequantization"),
        "linearization": _linearization_map,
        "hallucination": _hallucination_map,
        "refinement": lambda: _unet_map("Refinement_Net", "refinement"),
    }
    out: dict[str, Path] = {}
    for net in networks:
        out.update(builders[net]())
    return out


def is_optimizer_slot(name: str) -> bool:
    """True for optimiser state stored beside a variable (`…/Adam`, `…/Adam_1`, …)."""
    return bool(_SLOT.search(name))


def network_of(name: str) -> str | None:
    """The network whose TF1 scope holds `name`, or None (optimiser scalars, global_step, …)."""
    for net, prefixes in SCOPES.items():
        if name.startswith(prefixes):
            return net
    return None


# ----------------------------------------------------------------------------- config / model


def reference_config(invemor: str, imported_from: Mapping[str, str], *, joint: bool):
    """The config stored with the import: the reference model settings and where each net came from.

    joint: the Refinement-Net comes from the authors' jointly fine-tuned checkpoint (`--joint`).
    Without it the weights are the three stage checkpoints of `test_real.py` and the
    Refinement-Net is the identity: the stored stage says so, and the output stage is the
    hallucinated image (so predict and evaluate stop there by default, as test_real.py does).
    """
    import ml_collections

    c = ml_collections.ConfigDict()
    # The training the weights last had: joint fine-tuning (all four nets trained together), or
    # the separate stage trainings, of which hallucination is the last.
    c.stage = "joint" if joint else "hallucination"
    if not joint:
        c.output_stage = "hallucination"  # read by hdrjax.weights.loading.stages_for_checkpoint
    c.model = build.reference_model()  # §2.2.4 "shift": as the TF1 weights were trained
    c.crf = ml_collections.ConfigDict()
    c.crf.bank = "family"  # unused by inference; the default of configs/default.py
    c.crf.invemor = os.fspath(invemor)  # §2.2.3: the basis the TF Linearization-Net was trained with
    c.imported_from = ml_collections.ConfigDict(dict(imported_from))
    return c


def identity_refinement(shapes: Mapping[Path, tuple[int, ...]], seed: int = INIT_SEED) -> dict[Path, np.ndarray]:
    """Refinement-Net params whose output is relu(A) = A: Glorot-uniform kernels, zero biases, last conv zero.

    Drawn with numpy (no network init to trace) from the model's `shapes`; the zeroed last
    conv makes the values of the others irrelevant to the output, but keeps them trainable.
    """
    from hdrjax.models.layers import tf_layer_name

    rng = np.random.default_rng(seed)
    last = tf_layer_name(UNET_CONVS - 1)
    out = {}
    for path, shape in sorted(shapes.items()):
        if path[:2] != ("params", "refinement"):
            continue
        if path[-1] == "kernel" and path[-2] != last:
            receptive = int(np.prod(shape[:-2]))
            limit = np.sqrt(6.0 / (receptive * (shape[-2] + shape[-1])))  # tf.layers.conv2d's Glorot uniform
            out[path] = rng.uniform(-limit, limit, shape).astype(np.float32)
        else:
            out[path] = np.zeros(shape, np.float32)
    return out


# ----------------------------------------------------------------------------- import


def _listing(names, limit: int = 8) -> str:
    names = sorted(names)
    more = f" … and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def import_network(reader, net: str, shapes: Mapping[Path, tuple[int, ...]], name_map: Mapping[str, Path] | None = None):
    """({path: float32 array}, summary) of network `net` from an open checkpoint reader.

    Raises TF1ImportError naming the checkpoint and the variables when one is missing,
    left over (in the net's scope, not an optimiser slot) or of the wrong shape / dtype.
    """
    where = os.path.abspath(reader.prefix)
    name_map = {n: p for n, p in (name_map or tf1_variable_map([net])).items() if p[1] == net}
    stored = reader.variables()
    in_scope = [n for n in stored if network_of(n) == net]
    slots = [n for n in in_scope if is_optimizer_slot(n)]
    found = set(in_scope) - set(slots)
    missing = set(name_map) - found
    if missing:
        hint = "" if found else f" (it holds no {'/'.join(SCOPES[net])} variables: is it the right checkpoint?)"
        raise TF1ImportError(f"{where}: {len(missing)} {net} variables are missing{hint}: {_listing(missing)}")
    extra = found - set(name_map)
    if extra:
        raise TF1ImportError(f"{where}: {len(extra)} {net} variables have no place in the model: {_listing(extra)}")
    for name, path in sorted(name_map.items()):
        dtype, shape = stored[name]
        if tuple(shape) != shapes[path]:
            raise TF1ImportError(
                f"{where}: {name} has shape {list(shape)}, the model's {'/'.join(path)} needs {list(shapes[path])}"
            )
        if dtype not in ("float32", "float16", "bfloat16", "float64"):
            raise TF1ImportError(f"{where}: {name} has dtype {dtype}, expected a float tensor")
    arrays = reader.get_tensors(sorted(name_map))
    values = {name_map[n]: np.asarray(a, np.float32) for n, a in arrays.items()}
    summary = {"variables": len(name_map), "slots_skipped": len(slots), "source": where}
    return values, summary


def check_coverage(name_map: Mapping[str, Path], shapes: Mapping[Path, Any], networks) -> None:
    """Raise TF1ImportError unless the name map covers exactly the model's variables of `networks`."""
    wanted = {p for p in shapes if p[1] in networks}
    mapped = {p for p in name_map.values() if p[1] in networks}
    if wanted != mapped:
        unmapped = ["/".join(p) for p in wanted - mapped]
        unknown = ["/".join(p) for p in mapped - wanted]
        raise TF1ImportError(
            "the SingleHDR model and the TF1 name map disagree (a model change?): "
            + (f"model variables without a TF1 name: {_listing(unmapped)}" if unmapped else "")
            + ("; " if unmapped and unknown else "")
            + (f"TF1 names for variables the model lacks: {_listing(unknown)}" if unknown else "")
        )


def import_variables(sources: Mapping[str, Any], model, *, shapes=None, reader: str = "numpy", verify: bool = True, log=print):
    """SingleHDR `variables` ({"params", "batch_stats"}, numpy) from TF1 checkpoints.

    `sources` maps each of dequantization / linearization / hallucination (and optionally
    refinement) to a checkpoint prefix, `.index` file or directory; a missing refinement
    becomes `identity_refinement()`.  `shapes`: `build.flat_variable_shapes(model)` if already known.
    Also returns {network: source description}.
    """
    import flax

    for net in NETWORKS[:3]:
        if net not in sources:
            raise TF1ImportError(f"no checkpoint for the {net} network: give {FLAGS[net]} or --joint")
    unknown = set(sources) - set(NETWORKS)
    if unknown:
        raise TF1ImportError(f"unknown networks {sorted(unknown)}; expected some of {NETWORKS}")
    shapes = build.flat_variable_shapes(model) if shapes is None else shapes
    name_map = tf1_variable_map()
    check_coverage(name_map, shapes, NETWORKS)

    flat: dict[Path, np.ndarray] = {}
    imported_from: dict[str, str] = {}
    readers: dict[str, Any] = {}  # one open index per distinct checkpoint
    for net in NETWORKS:
        if net not in sources:
            flat.update(identity_refinement(shapes))
            imported_from[net] = "identity: last conv zeroed, R = A (no joint checkpoint; as test_real.py)"
            log(f"{net:>14}: identity (no --joint checkpoint)")
            continue
        key = os.fspath(sources[net])
        if key not in readers:
            readers[key] = open_reader(key, reader, verify=verify)
        values, summary = import_network(readers[key], net, shapes, name_map)
        flat.update(values)
        imported_from[net] = summary["source"]
        log(f"{net:>14}: {summary['variables']} variables from {summary['source']} "
            f"({summary['slots_skipped']} optimiser slots skipped)")
    for key, r in readers.items():
        ignored = [n for n in r.variables() if network_of(n) is None]
        if ignored:
            log(f"{'':>14}  ignored outside the networks' scopes in {r.prefix}: {_listing(ignored, 5)}")

    missing = set(shapes) - set(flat)
    if missing:  # cannot happen after check_coverage; kept as the final guarantee
        raise TF1ImportError(f"model variables left without a value: {_listing('/'.join(p) for p in missing)}")
    variables = flax.traverse_util.unflatten_dict(flat)
    variables.setdefault("batch_stats", {})
    return variables, imported_from


# ----------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hdrjax.tools.import_tf1",
        description="Convert the authors' TF1 SingleHDR checkpoints into an hdrjax checkpoint.",
    )
    p.add_argument("--deq", help="Dequantization-Net checkpoint (prefix, .index file or folder), e.g. ckpt_deq/model.ckpt")
    p.add_argument("--lin", help="Linearization-Net checkpoint, e.g. ckpt_lin/model.ckpt")
    p.add_argument("--hal", help="Hallucination-Net checkpoint, e.g. ckpt_hal/model.ckpt")
    p.add_argument("--joint", help="jointly fine-tuned checkpoint with all four nets, e.g. ckpt_deq_lin_hal_ref/model.ckpt")
    p.add_argument("--invemor", help=f"the authors' invemor.txt (required; {INVEMOR_HINT})")
    p.add_argument("--out", required=True, help="output checkpoint folder (must not exist or be empty)")
    p.add_argument("--reader", choices=("numpy", "tf"), default="numpy",
                   help="numpy: hdrjax's own reader (default, no TensorFlow); tf: tf.train.load_checkpoint")
    p.add_argument("--no-verify", action="store_true", help="skip the per-tensor crc32c check (numpy reader)")
    return p


def _sources(args) -> dict[str, str]:
    sources: dict[str, str] = {}
    if args.joint:
        sources = {net: args.joint for net in NETWORKS}
    for net, value in (("dequantization", args.deq), ("linearization", args.lin), ("hallucination", args.hal)):
        if value:
            sources[net] = value
    missing = [FLAGS[n] for n in NETWORKS[:3] if n not in sources]
    if missing:
        raise TF1ImportError(f"missing {' '.join(missing)}: give all of --deq --lin --hal, or --joint")
    return sources


def run(args, log=print) -> pathlib.Path:
    """Import per parsed CLI `args`; returns the output path."""
    from hdrjax.camera import crf
    from hdrjax.camera import basis as basis_lib
    from hdrjax.weights import checkpoints

    sources = _sources(args)
    if not args.invemor:
        raise TF1ImportError(
            "--invemor is required: the TF Linearization-Net was trained on the inverse-EMoR basis, "
            f"not on hdrjax's built-in one ({INVEMOR_HINT})"
        )
    invemor = pathlib.Path(args.invemor).expanduser().absolute()
    try:
        basis_lib.load_invemor(invemor)
    except crf.CRFError as e:
        raise TF1ImportError(f"--invemor: {e} ({INVEMOR_HINT})") from None
    for source in sorted(set(sources.values())):
        resolve_prefix(source)  # a missing or foreign file fails now, not after minutes of work
    out = pathlib.Path(args.out).expanduser().absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TF1ImportError(f"{out}: already exists and is not an empty folder; choose another --out")

    # The config names the basis copy kept beside the weights, so the import is self-contained.
    basis_copy = out / f"invemor{invemor.suffix or '.txt'}"
    joint = "refinement" in sources
    config = reference_config(os.fspath(basis_copy), {}, joint=joint)
    model = build.build_model(reference_config(os.fspath(invemor), {}, joint=joint))
    variables, imported_from = import_variables(sources, model, reader=args.reader, verify=not args.no_verify, log=log)
    config.imported_from.update(imported_from)
    config.imported_from.invemor = os.fspath(invemor)
    checkpoints.save_variables(out, variables, config)
    shutil.copyfile(invemor, basis_copy)
    log(f"wrote {out}")
    return out


def main(argv=None) -> int:
    """CLI entry point: 0 on success, 1 with one line on stderr for a user error."""
    from hdrjax import cli

    args = _parser().parse_args(argv)
    cli.configure_logging()
    try:
        run(args)
    except HdrjaxError as e:
        return cli.fail(e)
    except OSError as e:  # a folder that cannot be written, a file that vanished
        return cli.fail(HdrjaxError(str(e)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
