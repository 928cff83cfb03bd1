"""`hdrjax-serve` / `python -m hdrjax.serve`: the local web page.

    hdrjax-serve                          # the shipped model, http://127.0.0.1:8765/
    hdrjax-serve --checkpoint runs/joint --port 9000

Loads the model once (as `predict` does, `hdrjax.weights.loading`), starts the worker
(`hdrjax.serve.jobs`) and serves the page (`hdrjax.serve.app`) with uvicorn on 127.0.0.1
unless `--host` says otherwise.  The first line printed is the page's address.  Results live in
a temporary folder removed when the server stops; each is deleted `--keep-minutes` after it
finished.
"""
from __future__ import annotations

import argparse
import logging
import pathlib
import shutil
import socket
import tempfile
from typing import Sequence

from hdrjax.cli import configure_logging, fail
from hdrjax.errors import HdrjaxError
from hdrjax.predict import ENGINES
from hdrjax.serve.jobs import ServeConfig

logger = logging.getLogger("hdrjax.serve")
DEFAULT_PORT = 8765
ADDRESS_PREFIX = "hdrjax-serve: "  # the first line on stdout: this, then the page's address


def _parser() -> argparse.ArgumentParser:
    d = ServeConfig()
    p = argparse.ArgumentParser(prog="hdrjax-serve", description="A local web page: drop photos, see and download their HDR reconstruction.")
    p.add_argument("--checkpoint", default=None,
                   help="training workdir, checkpoint directory or shipped-model folder; default: the model shipped with hdrjax")
    p.add_argument("--engine", choices=ENGINES, default="regions",
                   help="as predict's: regions (default), tiles or one-pass (no receptive-field measurement: quickest to start)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free port)")
    p.add_argument("--max-upload-mb", type=float, default=d.max_upload_bytes / 2**20, help="largest upload in MiB (default %(default)g)")
    p.add_argument("--max-megapixels", type=float, default=d.max_megapixels, help="largest photo (default %(default)g MP)")
    p.add_argument("--max-queue", type=int, default=d.max_queue, help="photos waiting or running over all users (default %(default)s)")
    p.add_argument("--keep-minutes", type=float, default=d.keep_seconds / 60, help="results are deleted this long after they are done (default %(default)g)")
    p.add_argument("--brackets", default=",".join(f"{s:g}" for s in d.brackets), help="stops of the brackets download (default %(default)s)")
    p.add_argument("--no-compilation-cache", action="store_true", help="compile every run afresh")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: serve until interrupted; 1 if the model or the port cannot be had."""
    parser = _parser()
    args = parser.parse_args(argv)
    configure_logging(args.quiet)
    from hdrjax.display.brackets import parse_stops

    try:
        config = ServeConfig(max_upload_bytes=int(args.max_upload_mb * 2**20), max_megapixels=args.max_megapixels,
                             max_queue=args.max_queue, keep_seconds=args.keep_minutes * 60,
                             brackets=parse_stops(args.brackets))
    except ValueError as e:
        parser.error(str(e))
    if min(config.max_upload_bytes, config.max_megapixels, config.max_queue, config.keep_seconds) <= 0:
        parser.error("the limits must be positive")

    try:
        sock = socket.create_server((args.host, args.port))
    except OSError as e:
        return fail(HdrjaxError(f"{args.host}:{args.port}: cannot listen there ({e.strerror or e})"))
    try:
        worker = _start_worker(args, config)
    except HdrjaxError as e:
        sock.close()
        return fail(e)
    def shut_down():
        worker.stop()
        shutil.rmtree(worker.workdir, ignore_errors=True)

    try:
        return _serve(sock, worker, args, shut_down)
    finally:
        shut_down()  # also when the server fails to start


def _start_worker(args, config: ServeConfig):
    from hdrjax.weights import loading
    from hdrjax.predict import PredictConfig
    from hdrjax.serve.jobs import Worker

    loaded = loading.load(args.checkpoint)
    if loaded.warning:
        logger.warning(f"{args.checkpoint or 'default model'}: {loaded.warning}")
    if not args.no_compilation_cache:
        from hdrjax.cache import enable_compilation_cache

        enable_compilation_cache(None)
    predict_config = PredictConfig(engine=args.engine, stages=loading.stages_for_checkpoint(loaded.config))
    logger.info(f"{loaded.description}; output after {predict_config.stages[-1]}")
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="hdrjax-serve-"))
    return Worker(loaded.model, loaded.variables, predict_config, config, workdir).start()


def _serve(sock: socket.socket, worker, args, on_shutdown) -> int:
    import uvicorn

    from hdrjax.serve.app import create_app

    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    # First line: the address (scripts and tests read it; --port 0 picks a free port).
    print(f"{ADDRESS_PREFIX}http://{shown}:{port}/", flush=True)
    server = uvicorn.Server(uvicorn.Config(
        create_app(worker, on_shutdown), log_level="warning" if args.quiet else "info", access_log=False,
        limit_concurrency=200, timeout_keep_alive=5,
    ))
    server.run(sockets=[sock])
    return 0


def spawn(args: Sequence[str] = (), env=None, timeout: float = 300.0):
    """Start `python -m hdrjax.serve ARGS` as a child process; (process, address) once it listens.

    For scripts and tests that use the page as a user would: its output is read up to the
    address line (ADDRESS_PREFIX); the caller terminates the process (SIGTERM stops it cleanly).
    """
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "hdrjax.serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    seen, deadline = [], time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith(ADDRESS_PREFIX):
            return proc, line[len(ADDRESS_PREFIX):].strip()
    proc.kill()
    proc.wait()
    raise RuntimeError("hdrjax-serve did not start:\n" + "".join(seen))
