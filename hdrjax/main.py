"""Train SingleHDR: `python -m hdrjax.main --config=joint --workdir=runs/joint` (or `hdrjax-train`).

`--config` is a config name from hdrjax/configs (or the path of any config file), optionally
followed by variants after a colon: `--config=dequantization:smoke,dorf`.  Any config field
can then be overridden: `--config.train.batch_size=16`.  `--help` lists the configs, their
variants and the fields.
"""
import logging as pylogging
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from hdrjax import configs

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config: a name from hdrjax/configs or a "
                                          "config file path, then ':variant,...'.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, config.json, metrics.jsonl, TensorBoard events.")
flags.mark_flags_as_required(["config", "workdir"])


def usage() -> str:
    """What `--help` prints before the flags: the configs, the variants and how to override."""
    from hdrjax.configs import default

    lines = [__doc__.strip(), "", "Configs (hdrjax/configs/<name>.py):"]
    lines += [f"  {name:<15} {configs.summary(name)}" for name in configs.NAMES if name != "default"]
    lines += ["", "Variants (after the colon, comma-separated, in order):"]
    lines += [f"  {name:<15} {default.VARIANT_HELP[name]}" for name in default.VARIANTS]
    lines += ["", "Fields: hdrjax/configs/default.py lists and explains every field; override any with",
              "--config.<section>.<field>=<value>.",
              "Examples:",
              "  python -m hdrjax.main --config=joint --workdir=runs/joint",
              "  python -m hdrjax.main --config=dequantization:cpu --workdir=runs/deq --config.train.batch_size=8",
              "  python -m hdrjax.launch --processes 2 -- --config=dequantization:smoke --workdir=runs/deq2"]
    return "\n".join(lines)


def resolve_config_argument(argv: list[str]) -> list[str]:
    """`--config=<name>[:variants]` → the path of hdrjax/configs/<name>.py[:variants].

    A value that is an existing file (or has a path separator or .py) is left as it is, so any
    config file still works.
    """
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--config", "-config") and i + 1 < len(argv):
            out += [arg, _resolve(argv[i + 1])]
            i += 2
            continue
        for prefix in ("--config=", "-config="):
            if arg.startswith(prefix):
                arg = prefix + _resolve(arg[len(prefix):])
        out.append(arg)
        i += 1
    return out


def _resolve(value: str) -> str:
    name, sep, variants = value.partition(":")
    if os.sep in name or "/" in name or name.endswith(".py") or os.path.exists(name) or name not in configs.NAMES:
        return value
    return str(configs.path(name)) + sep + variants


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    # Our progress lines at INFO; the libraries' INFO chatter (orbax logs every save through
    # absl) only with --verbosity=0 or higher.
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    pylogging.getLogger("hdrjax").setLevel(pylogging.INFO)

    from hdrjax import cli, train  # after flag parsing: keeps --help fast
    from hdrjax.errors import HdrjaxError

    try:
        train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    except HdrjaxError as e:
        # Our config / data / checkpoint errors: one line, no traceback.
        sys.exit(cli.fail(e))


def run() -> None:
    """Console entry point `hdrjax-train` (and `python -m hdrjax.main`)."""
    argv = resolve_config_argument(sys.argv)
    if any(a in ("--help", "-h", "-help", "--helpshort") for a in argv[1:]):
        print(usage())
        print(f"\nFlags:\n  --config   {_CONFIG_HELP}\n  --workdir  {_WORKDIR_HELP}\n"
              "  --verbosity=0  also show the libraries' INFO lines (orbax saves, ...)")
        sys.exit(0)
    app.run(main, argv=argv)


_CONFIG_HELP = "a name above, or a config file path, then ':variant,...' (required)"
_WORKDIR_HELP = "checkpoints, config.json, metrics.jsonl and TensorBoard events (WORKDIR/tensorboard) (required)"

if __name__ == "__main__":
    run()
