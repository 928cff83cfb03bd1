"""Train SingleHDR: `python -m hdrjax.main --config=configs/joint.py --workdir=runs/joint`.

Any config field can be overridden, e.g. `--config.train.batch_size=16`; variants are
chosen after a colon, e.g. `--config=configs/dequantization.py:smoke`.
"""
import logging as pylogging
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard logs, config.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    # Our progress lines at INFO; the libraries' INFO chatter (orbax logs every save through
    # absl) only with --verbosity=0 or higher.
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    pylogging.getLogger("hdrjax").setLevel(pylogging.INFO)

    from hdrjax import train  # after flag parsing: keeps --help fast

    try:
        train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    except train.USER_ERRORS as e:
        # Our config / data / checkpoint errors: one line, no traceback.
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
