"""The web page's HTTP interface (FastAPI): one static page and a small JSON API over `Worker`.

    GET    /                            the page (static/index.html, app.js, style.css)
    POST   /api/jobs                    the photo as the raw request body, its name in X-Filename
    GET    /api/jobs/{id}               state, progress, statistics, which downloads exist
    DELETE /api/jobs/{id}               cancel (queued or running) or delete the results
    GET    /api/jobs/{id}/view/{which}  before | after: RGBE pixels the page draws
    GET    /api/jobs/{id}/files/{kind}  uhdr | exr | avif | avif-hlg | brackets
    GET    /api/health                  {"ok": true, "busy": n}; answers while a photo is processed

Safe by construction: ids are 144-bit random tokens, files are found by (id, fixed kind) in the
worker's records, never by a path from the client; an upload is streamed to disk and refused
as soon as it passes the byte limit; refusals are JSON {"error": "..."} with a 4xx/5xx status
and leave nothing behind.  The upload needs the custom X-Filename header, which a form or
script on another site cannot send without a CORS preflight this server never grants.
"""
import pathlib
import shutil

# Imported at module level: FastAPI reads the routes' annotations (Request) from this module.
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from hdrjax.serve.jobs import DOWNLOAD_SUFFIXES, DOWNLOADS, VIEWS, Job, Worker

STATIC = pathlib.Path(__file__).resolve().parent / "static"
MEDIA_TYPES = {"uhdr": "image/jpeg", "exr": "image/x-exr", "avif": "image/avif", "avif-hlg": "image/avif",
               "brackets": "application/zip"}


def create_app(worker: Worker, on_shutdown=None):
    """The FastAPI application serving `worker`'s jobs; `on_shutdown()` runs when the server stops."""
    import contextlib

    from hdrjax.serve import uploads

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        # Here, not after uvicorn returns: on SIGTERM uvicorn re-raises the signal once it has
        # shut down, which ends the process before any code after server.run().
        if on_shutdown is not None:
            on_shutdown()

    app = FastAPI(title="hdrjax", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    limits = worker.config
    uploading = [0]  # uploads being received now (one event loop: no lock needed)

    def full() -> bool:
        # Uploads in flight count against the queue, so N simultaneous uploads cannot fill
        # the disk with N × max_upload_bytes before any of them is queued.
        return worker.busy() + uploading[0] >= limits.max_queue

    def error(status: int, message: str):
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):  # unknown routes and methods: the same {"error"} shape
        return error(exc.status_code, str(exc.detail))

    def job_or_404(job_id: str):
        return worker.get(job_id)

    @app.get("/")
    async def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/health")
    async def health():
        return {"ok": True, "busy": worker.busy()}

    @app.get("/api/limits")
    async def get_limits():
        return {"max_upload_bytes": limits.max_upload_bytes, "max_megapixels": limits.max_megapixels,
                "max_queue": limits.max_queue, "keep_seconds": limits.keep_seconds,
                "brackets": list(limits.brackets)}

    @app.post("/api/jobs")
    async def upload(request: Request):
        from urllib.parse import unquote

        shown_name = unquote(request.headers.get("x-filename", ""))[:200]
        if "x-filename" not in request.headers:
            return error(400, "upload with the page (the X-Filename header is missing)")
        shown = shown_name or "the upload"
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limits.max_upload_bytes:
            return error(413, f"{shown}: {int(length) / 2**20:.1f} MiB; the limit is {limits.max_upload_bytes / 2**20:g} MiB")
        if full():
            return error(503, f"{shown}: the queue is full ({limits.max_queue} photos); try again when some are done")
        job_id, folder = worker.new_folder()
        uploading[0] += 1
        try:
            received = folder / "upload"
            size = 0
            with open(received, "wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limits.max_upload_bytes:
                        raise uploads.UploadError(
                            f"{shown}: larger than the limit of {limits.max_upload_bytes / 2**20:g} MiB", 413)
                    f.write(chunk)
            if size == 0:
                raise uploads.UploadError(f"{shown}: the file is empty", 400)
            suffix, width, height = await run_in_threadpool(uploads.identify, received, shown, limits.max_megapixels)
            input_path = folder / f"input{suffix}"
            received.rename(input_path)
            await run_in_threadpool(uploads.check_decodes, input_path, shown)
        except uploads.UploadError as e:
            shutil.rmtree(folder, ignore_errors=True)
            return error(e.status, str(e))
        except BaseException:  # a dropped connection or a bug: keep nothing
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            uploading[0] -= 1
        job = Job(id=job_id, name=uploads.safe_name(shown_name), folder=folder, input_path=input_path,
                  width=width, height=height)
        if not worker.submit(job):
            return error(503, f"{shown}: the queue is full ({limits.max_queue} photos); try again when some are done")
        return JSONResponse(worker.describe(job), status_code=201)

    @app.get("/api/jobs/{job_id}")
    async def status(job_id: str):
        job = job_or_404(job_id)
        if job is None:
            return error(404, "no such job: its results were deleted, or it never existed")
        return worker.describe(job)

    @app.delete("/api/jobs/{job_id}")
    async def cancel(job_id: str):
        if not worker.cancel(job_id):
            return error(404, "no such job: its results were deleted, or it never existed")
        return worker.describe(worker.get(job_id))

    @app.get("/api/jobs/{job_id}/view/{which}")
    async def view(job_id: str, which: str):
        job = job_or_404(job_id)
        if which not in VIEWS:
            return error(404, f"no view {which!r} (before, after)")
        if job is None or job.view_shape is None:
            return error(404, "no result to show (yet)")
        path = job.folder / f"view-{which}.rgbe"
        try:
            data = await run_in_threadpool(path.read_bytes)
        except FileNotFoundError:  # deleted between the check and the read
            return error(404, "no result to show")
        h, w = job.view_shape
        return Response(data, media_type="application/octet-stream",
                        headers={"X-Width": str(w), "X-Height": str(h), "Cache-Control": "no-store"})

    @app.get("/api/jobs/{job_id}/files/{kind}")
    async def download(job_id: str, kind: str):
        job = job_or_404(job_id)
        if kind not in DOWNLOADS:
            return error(404, f"no download {kind!r} ({', '.join(DOWNLOADS)})")
        path = None if job is None else job.files.get(kind)
        if path is None or not path.exists():
            return error(404, "this file is not ready, or was deleted")
        return FileResponse(path, media_type=MEDIA_TYPES[kind], filename=f"{job.name}{DOWNLOAD_SUFFIXES[kind]}",
                            headers={"Cache-Control": "no-store"})

    return app
