"""The web page's work queue: one model in memory, one photo at a time, results kept for a while.

A `Worker` owns the model and one thread that takes photos from a FIFO queue.  The web
server's threads only add jobs, read their state and cancel them, so any number of tabs or
users can be served while the memory in use stays that of one reconstruction: the queue is
bounded (`ServeConfig.max_queue`, a full queue refuses uploads) and nothing decoded is held
for a queued photo (its file waits on disk).

A job's folder (under the worker's own temporary folder, named by its unguessable id) holds
the upload and the results.  Steps, each checked against a cancel request first:
read -> reconstruct (the model) -> the page's views (two RGBE arrays at most `view_side` px:
the photo in linear light and the reconstruction; the first result the page shows) ->
the downloads in order uhdr, exr, avif, avif-hlg, brackets (each appears when written).
A job that fails or is cancelled has its folder removed at once; a finished job's folder is
removed `keep_seconds` after it finished (`sweep`, run by the cleaner thread).
"""
from __future__ import annotations

import dataclasses
import logging
import pathlib
import queue
import secrets
import shutil
import threading
import time
import zipfile

import numpy as np

from hdrjax.errors import HdrjaxError

logger = logging.getLogger("hdrjax.serve")

# Downloads in the order they are written (the Ultra HDR first: the page shows it).
DOWNLOADS = ("uhdr", "exr", "avif", "avif-hlg", "brackets")
DOWNLOAD_SUFFIXES = {"uhdr": ".uhdr.jpg", "exr": ".exr", "avif": ".avif", "avif-hlg": ".hlg.avif",
                     "brackets": "-brackets.zip"}
VIEWS = ("before", "after")

# Progress shown while the model runs: estimated from the seconds per megapixel of the photos
# done so far (this guess until the first one finishes).
FIRST_GUESS_SECONDS_PER_MP = 10.0


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    """Limits and choices of the web page (`hdrjax-serve --help` sets them)."""

    max_upload_bytes: int = 64 * 2**20  # an upload larger than this is refused while it arrives
    max_megapixels: float = 25.0  # a larger photo is refused from its header (regions engine: ~4 GB at 24 MP)
    max_queue: int = 16  # photos waiting or running, over all users; more are refused
    keep_seconds: float = 3600.0  # finished results are deleted this long after they finished
    max_kept: int = 32  # and the oldest beyond this many finished jobs, so the disk is bounded too
    view_side: int = 1280  # long side of the arrays the page draws (the downloads are full size)
    brackets: tuple[float, ...] = (-4.0, -2.0, 0.0, 2.0)  # stops of the brackets download


@dataclasses.dataclass
class Job:
    """One uploaded photo and what has been made of it."""

    id: str
    name: str  # a safe file stem from the upload's name, for download names only
    folder: pathlib.Path
    input_path: pathlib.Path
    width: int
    height: int
    submitted: float = dataclasses.field(default_factory=time.time)
    state: str = "queued"  # queued | running | done | failed | cancelled
    phase: str = "waiting"
    error: str | None = None
    started: float | None = None
    phase_started: float | None = None
    finished: float | None = None
    cancel_requested: bool = False
    view_shape: tuple[int, int] | None = None  # (height, width) of the page's arrays, once written
    stats: dict | None = None
    files: dict = dataclasses.field(default_factory=dict)  # download kind -> path, once written

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


class JobCancelled(HdrjaxError):
    """Raised inside the worker at its next step after the user cancelled the job."""


class Worker:
    """The model, its queue and thread, and the jobs of every user (see the module doc)."""

    def __init__(self, model, variables, predict_config, config: ServeConfig, workdir: pathlib.Path):
        self.model, self.variables, self.predict_config = model, variables, predict_config
        self.config = config
        self.workdir = pathlib.Path(workdir)
        self.jobs: dict[str, Job] = {}
        self._order: list[str] = []  # queued job ids, oldest first
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._seconds_per_mp: float | None = None
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, name="hdrjax-serve-worker", daemon=True),
                         threading.Thread(target=self._clean, name="hdrjax-serve-cleaner", daemon=True)]

    # ------------------------------------------------------------------ life cycle

    def start(self) -> "Worker":
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop taking jobs (idempotent); the photo being reconstructed is abandoned with the process."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._queue.put(None)
        for t in self._threads:
            if t.is_alive():
                t.join(timeout)

    # ------------------------------------------------------------------ what the web server calls

    def new_folder(self) -> tuple[str, pathlib.Path]:
        """A fresh unguessable job id and its (created) folder."""
        job_id = secrets.token_urlsafe(18)
        folder = self.workdir / job_id
        folder.mkdir()
        return job_id, folder

    def busy(self) -> int:
        """Jobs queued or running."""
        with self._lock:
            return self._busy()

    def _busy(self) -> int:
        return sum(j.state in ("queued", "running") for j in self.jobs.values())

    def submit(self, job: Job) -> bool:
        """Queue a job whose input is on disk; False (and its folder removed) when the queue is full."""
        with self._lock:
            if self._busy() >= self.config.max_queue:
                shutil.rmtree(job.folder, ignore_errors=True)
                return False
            self.jobs[job.id] = job
            self._order.append(job.id)
        self._queue.put(job.id)
        return True

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self.jobs.get(job_id)

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job, or delete a finished one's results; False if unknown."""
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                return False
            if job.state == "running":
                job.cancel_requested = True  # the worker stops at its next step
                return True
            if job.state == "queued":
                self._order.remove(job_id)
            self._forget(job, "cancelled")
            return True

    def describe(self, job: Job) -> dict:
        """The job's state as the page reads it (JSON-ready)."""
        with self._lock:
            position = self._order.index(job.id) if job.id in self._order else None
            progress, estimated = self._progress(job)
            return {
                "id": job.id, "name": job.name, "state": job.state, "phase": job.phase,
                "progress": progress, "estimated": estimated, "position": position, "error": job.error,
                "cancel_requested": job.cancel_requested,
                "width": job.width, "height": job.height,
                "view": None if job.view_shape is None else {"height": job.view_shape[0], "width": job.view_shape[1]},
                "stats": job.stats,
                "files": {k: {"bytes": p.stat().st_size} for k, p in job.files.items() if p.exists()},
                "expires_in": None if job.finished is None else max(0.0, job.finished + self.config.keep_seconds - time.time()),
            }

    # ------------------------------------------------------------------ the worker thread

    def _run(self) -> None:
        while not self._stop.is_set():
            job_id = self._queue.get()
            if job_id is None:
                return
            with self._lock:
                job = self.jobs.get(job_id)
                if job is None or job.state != "queued":
                    continue
                self._order.remove(job_id)
                job.state, job.started = "running", time.time()
            try:
                self._process(job)
            except JobCancelled:
                with self._lock:
                    self._forget(job, "cancelled")
            except Exception as e:  # a photo that breaks the pipeline fails alone; the server goes on
                if not isinstance(e, HdrjaxError):
                    logger.exception(f"job {job.name}: unexpected error")
                with self._lock:
                    job.error = _user_message(e, job)
                    self._forget(job, "failed")
            else:
                with self._lock:
                    job.state, job.phase, job.finished = "done", "done", time.time()
            self.sweep()  # keeps at most max_kept finished results

    def _step(self, job: Job, phase: str) -> None:
        with self._lock:
            if job.cancel_requested:
                raise JobCancelled()
            job.phase, job.phase_started = phase, time.time()

    def _process(self, job: Job) -> None:
        from hdrjax import predict
        from hdrjax.display import files, mapping
        from hdrjax.io import read_image

        self._step(job, "reading")
        ldr = read_image(job.input_path)
        self._step(job, "reconstructing")
        t0 = time.perf_counter()
        r = predict.reconstruct(self.model, self.variables, ldr, self.predict_config)
        model_seconds = time.perf_counter() - t0
        self._seconds_per_mp = model_seconds / max(job.megapixels, 1e-3)
        hdr = r.output
        linear = r.linear if r.linear is not None else hdr
        del ldr

        self._step(job, "views")
        stats = {
            "dynamic_range_before": mapping.dynamic_range_stops(linear),
            "dynamic_range_after": mapping.dynamic_range_stops(hdr),
            "reconstructed_fraction": r.stats.get("lit_fraction"),
            "headroom_stops": float(np.log2(mapping.headroom(hdr))),
            "model_seconds": model_seconds,
        }
        for view, image in zip(VIEWS, (linear, hdr)):
            small = _downscale(image, self.config.view_side)
            _write_bytes(job.folder / f"view-{view}.rgbe", _rgbe(small))
        with self._lock:
            job.view_shape = small.shape[:2]
            job.stats = {**stats, "seconds_to_view": time.time() - job.started}

        for kind in DOWNLOADS:
            self._step(job, f"writing {kind}")
            path = job.folder / f"{job.name}{DOWNLOAD_SUFFIXES[kind]}"
            if kind == "brackets":
                _write_brackets(path, hdr, job.name, self.config.brackets)
            else:
                files.write(path, kind, hdr)
            with self._lock:
                job.files[kind] = path
        with self._lock:
            job.stats["total_seconds"] = time.time() - job.started

    def _progress(self, job: Job) -> tuple[float, bool]:
        """(fraction done, whether it is an estimate) from the job's phase."""
        if job.state in ("done", "failed", "cancelled"):
            return 1.0, False
        if job.state == "queued":
            return 0.0, False
        if job.phase == "reconstructing":
            per_mp = self._seconds_per_mp or FIRST_GUESS_SECONDS_PER_MP
            elapsed = time.time() - (job.phase_started or time.time())
            return 0.05 + 0.75 * min(0.95, elapsed / (per_mp * max(job.megapixels, 1e-3))), True
        if job.phase.startswith("writing"):
            return 0.8 + 0.2 * len(job.files) / len(DOWNLOADS), False
        return (0.8 if job.phase == "views" else 0.02), False

    # ------------------------------------------------------------------ clean-up

    def _forget(self, job: Job, state: str) -> None:
        """Mark a job finished in `state` and delete its files (called with the lock held)."""
        job.state, job.finished = state, time.time()
        job.files = {}
        job.view_shape = None
        shutil.rmtree(job.folder, ignore_errors=True)

    def sweep(self, now: float | None = None) -> int:
        """Remove jobs that finished more than `keep_seconds` ago, and the oldest beyond `max_kept`."""
        now = time.time() if now is None else now
        with self._lock:
            finished = sorted((j for j in self.jobs.values() if j.finished is not None), key=lambda j: j.finished)
            surplus = max(0, len(finished) - self.config.max_kept)
            old = [j for i, j in enumerate(finished) if i < surplus or now - j.finished > self.config.keep_seconds]
            for job in old:
                shutil.rmtree(job.folder, ignore_errors=True)
                del self.jobs[job.id]
        return len(old)

    def _clean(self) -> None:
        interval = min(60.0, max(1.0, self.config.keep_seconds / 4))
        while not self._stop.wait(interval):
            self.sweep()


def _user_message(error: Exception, job: Job) -> str:
    if isinstance(error, HdrjaxError):
        # Messages name the server's file; the user knows the photo by its own name.
        return str(error).replace(str(job.input_path), job.name)
    return f"{job.name}: the reconstruction failed ({type(error).__name__}); the server log has the details"


def _downscale(image: np.ndarray, side: int) -> np.ndarray:
    """Area-average `image` so its long side is at most `side` px."""
    import cv2

    h, w = image.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return np.ascontiguousarray(image, np.float32)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(np.ascontiguousarray(image, np.float32), size, interpolation=cv2.INTER_AREA)


def _rgbe(image: np.ndarray) -> bytes:
    """Raw RGBE pixels (4 bytes each, no header), the page's compact float image."""
    import imagecodecs

    return imagecodecs.rgbe_encode(np.maximum(image, 0.0).astype(np.float32), header=False, rle=False)


def _write_bytes(path: pathlib.Path, data: bytes) -> None:
    from hdrjax.io import atomic_write

    with atomic_write(path) as f:
        f.write(data)


def _write_brackets(path: pathlib.Path, hdr: np.ndarray, name: str, stops) -> None:
    """A zip of the bracket JPEGs (stored, not deflated: JPEG does not compress further)."""
    from hdrjax.display.brackets import bracket_names, encode_bracket
    from hdrjax.io import atomic_write

    with atomic_write(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
        for stop, member in zip(stops, bracket_names(name, stops)):
            z.writestr(member, encode_bracket(hdr, stop))
