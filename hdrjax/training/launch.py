"""Running training as N cooperating processes on this machine: their commands, environments
and the supervision of all of them (`run`).  The command line is `python -m hdrjax.launch`.

Each process is `python -m hdrjax.main <arguments>` with `--config.parallel.multi_host=True` and
a local coordinator, so it goes through `jax.distributed.initialize` exactly as one process per
host of a cluster does.  Lines of process i are prefixed with "[i] ".  SIGTERM / Ctrl-C is
passed on once to every process: they stop together at the next step boundary and save a
checkpoint (a second one exits at once).
"""
from __future__ import annotations

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


def run(main_args, *, processes: int, devices_per_process: int = 0, port: int = 0) -> int:
    """Start `processes` copies of `hdrjax.main main_args`, wait for all; the exit status.

    The first failing process's status (128 + signal number for a process killed by a
    signal), else 0.
    """
    port = port or free_port()
    env = worker_env(devices_per_process)
    procs = []
    pumps = []
    for i in range(processes):
        # Own session: a Ctrl-C in the terminal reaches only this launcher, which passes it on
        # once (the terminal's copy plus ours would count as the second, "exit now" signal).
        proc = subprocess.Popen(
            worker_command(main_args, process_id=i, num_processes=processes, port=port),
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
        print(f"error: process {i} of {processes} failed ({what}); "
              f"{len(failed)} of {processes} processes failed", file=sys.stderr)
        return status
    return 0

