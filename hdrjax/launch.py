"""Run training as N cooperating processes on this machine, the way a pod runs it.

    python -m hdrjax.launch --processes 2 --devices_per_process 4 -- \\
        --config=configs/dequantization.py:smoke --workdir=runs/deq2

starts N copies of `python -m hdrjax.main <arguments after -->` with
`--config.parallel.multi_host=True` and a local coordinator, so each goes through
`jax.distributed.initialize` exactly as one process per host of a cluster does: a global
mesh over the devices of all processes, each process loading only its shard of the data,
collectives between processes (gloo on CPU), one checkpoint written by all of them.

`--devices_per_process K` gives each process K fake CPU devices (testing the multi-host
path on one machine).  Without it each process sees the machine's devices as JAX finds them
(on a multi-GPU machine restrict them per process, e.g. with CUDA_VISIBLE_DEVICES, or run one
process per GPU through your cluster's launcher: README, "Several hosts").

Lines of process i are prefixed with "[i] ".  SIGTERM / Ctrl-C is passed on once to every
process: they stop together at the next step boundary and save a checkpoint (a second one
exits at once).  The exit status is the first failing process's (128 + signal number for a
process killed by a signal), else 0.  A process that dies takes the others down after
`config.parallel.heartbeat_timeout_secs`.
"""
from __future__ import annotations

import argparse
import sys

from hdrjax.training import launch


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m hdrjax.launch",
        description="Train as N cooperating processes on this machine (the multi-host code path).",
        epilog="Everything after -- goes to `python -m hdrjax.main` (e.g. --config=configs/joint.py --workdir=...).")
    parser.add_argument("--processes", type=int, required=True, help="number of processes (>= 1)")
    parser.add_argument("--devices_per_process", type=int, default=0,
                        help="fake CPU devices per process (0 = the devices JAX finds)")
    parser.add_argument("--port", type=int, default=0, help="coordinator port (0 = a free one)")
    if "--" in argv:
        i = argv.index("--")
        args, main_args = parser.parse_args(argv[:i]), argv[i + 1:]
    else:
        args, main_args = parser.parse_args(argv), []
    if args.processes < 1:
        parser.error(f"--processes must be >= 1, got {args.processes}")
    if args.devices_per_process < 0:
        parser.error(f"--devices_per_process must be >= 0, got {args.devices_per_process}")
    if not any(a.startswith("--config") for a in main_args):
        # --workdir may be left out: every process then uses the same default, runs/<config name>.
        parser.error("give the training arguments after --, at least --config=...")
    return args, main_args


def main(argv=None) -> int:
    args, main_args = parse_args(sys.argv[1:] if argv is None else argv)
    return launch.run(main_args, processes=args.processes, devices_per_process=args.devices_per_process,
                      port=args.port)


if __name__ == "__main__":
    sys.exit(main())
