"""Train SingleHDR: `python -m hdrjax.main --config=configs/joint.py` (or `hdrjax-train`).

`--config` is a config file (`configs/<name>.py` in the repository) or just its name, optionally
followed by variants after a colon: `--config=configs/dequantization.py:smoke,dorf`.  Any config
field can then be overridden: `--config.train.batch_size=16`.  `--workdir` defaults to
runs/<name>[-<variants>] under the current folder, so running the same command again resumes.
`--help` lists the configs, their variants and the fields.
"""
import logging as pylogging
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from hdrjax import configs

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config: a file such as configs/joint.py "
                                          "or its name, then ':variant,...'.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, config.json, metrics.jsonl, TensorBoard events "
                               "(default runs/<config name>[-<variants>]).")
flags.mark_flags_as_required(["config"])


def usage() -> str:
    """What `--help` prints before the flags: the configs, the variants and how to override."""
    from hdrjax.configs import default

    lines = [__doc__.strip(), "", "Configs (--config=configs/<name>.py, or just <name>):"]
    lines += [f"  configs/{name + '.py':<18} {configs.summary(name)}" for name in configs.NAMES if name != "default"]
    lines += ["", "Variants (after the colon, comma-separated, in order):"]
    lines += [f"  {name:<15} {default.VARIANT_HELP[name]}" for name in default.VARIANTS]
    lines += ["", "Fields: configs/default.py lists and explains every field; override any with",
              "--config.<section>.<field>=<value>.",
              "Examples:",
              "  python -m hdrjax.main --config=configs/joint.py                     # workdir runs/joint",
              "  python -m hdrjax.main --config=configs/dequantization.py:cpu --workdir=runs/deq "
              "--config.train.batch_size=8",
              "  python -m hdrjax.launch --processes 2 -- --config=configs/dequantization.py:smoke --workdir=runs/deq2"]
    return "\n".join(lines)


def resolve_config_argument(argv: list[str]) -> list[str]:
    """`--config=<name>[:variants]` → the path of configs/<name>.py[:variants].

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


def config_argument(argv: list[str]) -> str | None:
    """The value of `--config` in argv (after resolve_config_argument), None if absent."""
    for i, arg in enumerate(argv):
        if arg in ("--config", "-config") and i + 1 < len(argv):
            return argv[i + 1]
        for prefix in ("--config=", "-config="):
            if arg.startswith(prefix):
                return arg[len(prefix):]
    return None


def default_workdir(config_value: str) -> str:
    """runs/<config file stem>[-<variants joined by '-'>]: one folder per experiment, so the same
    command run again finds its checkpoints and resumes."""
    file, _, variants = config_value.partition(":")
    name = os.path.splitext(os.path.basename(file))[0] or "run"
    parts = [name] + [v.strip() for v in variants.split(",") if v.strip()]
    return os.path.join("runs", "-".join(parts))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    # Our progress lines at INFO; the libraries' INFO chatter (orbax logs every save through
    # absl) only with --verbosity=0 or higher.
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    pylogging.getLogger("hdrjax").setLevel(pylogging.INFO)

    from hdrjax import cli
    from hdrjax.errors import HdrjaxError
    from hdrjax.training import loop  # after flag parsing: keeps --help fast

    workdir = _WORKDIR.value
    if workdir is None:
        workdir = default_workdir(config_argument(sys.argv) or "")
    note = "" if _WORKDIR.present else " (default for this config; --workdir to change; the same command resumes)"
    pylogging.getLogger("hdrjax").info("workdir: %s%s", workdir, note)
    try:
        loop.train_and_evaluate(_CONFIG.value, workdir)
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
    value = config_argument(argv)
    if value is not None:
        # Check the file before absl loads it: absl reports a missing or broken config file as an
        # OSError traceback; we report one `error:` line naming the file.
        from hdrjax import cli
        from hdrjax.errors import ConfigError

        try:
            configs.load_file(value)
        except ConfigError as e:
            sys.exit(cli.fail(e))
    sys.argv = argv  # config_argument/default_workdir read the resolved values
    app.run(main, argv=argv)


_CONFIG_HELP = "configs/<name>.py (or just <name>) or any config file, then ':variant,...' (required)"
_WORKDIR_HELP = ("checkpoints, config.json, metrics.jsonl and TensorBoard events (WORKDIR/tensorboard); "
                 "default runs/<config name>[-<variants>]")

if __name__ == "__main__":
    run()
