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
import os
import signal
import socket
import subprocess
import sys
import threading


def free_port() -> int:
    """A TCP port nobody listens on now (the coordinator binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_command(main_args, *, process_id: int, num_processes: int, port: int) -> list[str]:
    """The `hdrjax.main` command line of process `process_id`."""
    return [
        sys.executable, "-m", "hdrjax.main", *main_args,
        "--config.parallel.multi_host=True",
        f"--config.parallel.coordinator_address=127.0.0.1:{port}",
        f"--config.parallel.num_processes={num_processes}",
        f"--config.parallel.process_id={process_id}",
    ]


def worker_env(devices_per_process: int, base=None) -> dict:
    """The environment of one process: K fake CPU devices when asked, else unchanged."""
    env = dict(os.environ if base is None else base)
    if devices_per_process:
        flags = [f for f in env.get("XLA_FLAGS", "").split()
                 if not f.startswith("--xla_force_host_platform_device_count")]
        env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={devices_per_process}"])
        env["JAX_PLATFORMS"] = "cpu"
    return env


def _pump(stream, prefix: str, out) -> None:
    for line in iter(stream.readline, b""):
        out.write(prefix.encode() + line)
        out.flush()


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
    port = args.port or free_port()
    env = worker_env(args.devices_per_process)
    procs = []
    pumps = []
    for i in range(args.processes):
        # Own session: a Ctrl-C in the terminal reaches only this launcher, which passes it on
        # once (the terminal's copy plus ours would count as the second, "exit now" signal).
        proc = subprocess.Popen(
            worker_command(main_args, process_id=i, num_processes=args.processes, port=port),
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(proc)
        t = threading.Thread(target=_pump, args=(proc.stdout, f"[{i}] ", sys.stderr.buffer), daemon=True)
        t.start()
        pumps.append(t)

    def forward(signum, frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    old = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        codes = [p.wait() for p in procs]
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    for t in pumps:
        t.join(timeout=5)
    failed = [(i, c) for i, c in enumerate(codes) if c != 0]
    if failed:
        i, code = failed[0]
        status = 128 - code if code < 0 else code
        what = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        print(f"error: process {i} of {args.processes} failed ({what}); "
              f"{len(failed)} of {args.processes} processes failed", file=sys.stderr)
        return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
