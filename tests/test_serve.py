"""The web page's server (hdrjax.serve) through its HTTP interface, on the tiny model.

The browser itself is tested in test_serve_browser.py; here FastAPI's TestClient drives the
routes in-process: a photo goes through the queue to downloads that decode to the
reconstruction, and every kind of bad upload is refused with a message and leaves nothing.
"""
import io
import socket
import subprocess
import sys
import time
import zipfile

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from hdrjax import predict
from hdrjax.display import mapping, ultrahdr
from hdrjax.models.build import NETWORKS
from hdrjax.serve.app import create_app
from hdrjax.serve.jobs import DOWNLOADS, Job, ServeConfig, Worker

H, W = 48, 80  # the shape of the `photo_bytes` photos (tests/conftest.py)
CONFIG = predict.PredictConfig(engine="one-pass", stages=NETWORKS[:3])


def make_worker(tiny_model, tiny_variables, tmp_path, **limits):
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = ServeConfig(**{"brackets": (-2.0, 0.0, 2.0), **limits})
    return Worker(tiny_model, tiny_variables, CONFIG, config, workdir)


def post(client, data, name="photo.png", **headers):
    return client.post("/api/jobs", content=data, headers={"X-Filename": name, **headers})


def wait_done(client, job_id, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        d = client.get(f"/api/jobs/{job_id}").json()
        if d["state"] not in ("queued", "running"):
            return d
        time.sleep(0.2)
    raise AssertionError(f"job not done after {timeout} s: {d}")


def test_a_photo_goes_through_the_queue_to_downloads(tiny_model, tiny_variables, tmp_path, assert_round_trip,
                                                     photo_bytes):
    worker = make_worker(tiny_model, tiny_variables, tmp_path).start()
    try:
        client = TestClient(create_app(worker))
        page = client.get("/")
        assert page.status_code == 200 and 'id="exposure"' in page.text
        assert client.get("/static/app.js").status_code == 200
        r = post(client, photo_bytes(), name="My Photo (1).png")
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["state"] in ("queued", "running") and (job["width"], job["height"]) == (W, H)
        assert len(job["id"]) >= 24  # an unguessable token
        d = wait_done(client, job["id"])
        assert d["state"] == "done", d
        stats = d["stats"]
        assert stats["dynamic_range_after"] >= stats["dynamic_range_before"] > 0
        assert 0 <= stats["reconstructed_fraction"] <= 1 and stats["model_seconds"] > 0
        assert set(d["files"]) == set(DOWNLOADS) and d["expires_in"] > 0

        # The page's views: RGBE pixels of the view size.
        for which in ("before", "after"):
            v = client.get(f"/api/jobs/{job['id']}/view/{which}")
            assert v.status_code == 200 and len(v.content) == 4 * int(v.headers["x-width"]) * int(v.headers["x-height"])

        # The Ultra HDR download decodes to the reconstruction in display light.
        ldr = np.asarray(Image.open(io.BytesIO(photo_bytes())), np.float32) / 255.0
        expected = mapping.to_display(predict.reconstruct(tiny_model, tiny_variables, ldr, CONFIG).output)
        u = client.get(f"/api/jobs/{job['id']}/files/uhdr")
        assert u.status_code == 200 and u.headers["content-type"] == "image/jpeg"
        assert 'filename="My_Photo_1.uhdr.jpg"' in u.headers["content-disposition"]
        assert_round_trip(ultrahdr.decode(u.content), expected)
        z = zipfile.ZipFile(io.BytesIO(client.get(f"/api/jobs/{job['id']}/files/brackets").content))
        assert z.namelist() == ["My_Photo_1_b1_-2ev.jpg", "My_Photo_1_b2_+0ev.jpg", "My_Photo_1_b3_+2ev.jpg"]
        for kind in ("exr", "avif", "avif-hlg"):
            assert client.get(f"/api/jobs/{job['id']}/files/{kind}").status_code == 200

        # Deleting the results removes their folder; the downloads are gone.
        assert client.delete(f"/api/jobs/{job['id']}").json()["state"] == "cancelled"
        assert client.get(f"/api/jobs/{job['id']}/files/uhdr").status_code == 404
        assert list(worker.workdir.iterdir()) == []
    finally:
        worker.stop()


def test_bad_uploads_get_a_message_and_leave_nothing(tiny_model, tiny_variables, tmp_path, photo_bytes):
    worker = make_worker(tiny_model, tiny_variables, tmp_path, max_upload_bytes=50_000, max_megapixels=0.01)
    client = TestClient(create_app(worker))  # the worker is not started: nothing is processed
    good = photo_bytes()
    cases = [
        (post(client, b"just some text\n", name="notes.jpg"), 415, "notes.jpg: not an image"),
        (post(client, good[: len(good) // 2], name="half.png"), 400, "half.png: truncated"),
        (post(client, b"", name="empty.png"), 400, "empty.png: the file is empty"),
        (post(client, b"\x89PNG\r\n\x1a\n" + b"\0" * 40, name="header.png"), 415, "header.png: not an image"),
        (post(client, b"x" * 60_000, name="huge.jpg"), 413, "huge.jpg: 0.1 MiB; the limit"),
        # Without a Content-Length (chunked), the limit is enforced while the bytes arrive.
        (client.post("/api/jobs", content=iter([b"x" * 30_000] * 3), headers={"X-Filename": "stream.jpg"}),
         413, "stream.jpg: larger than the limit"),
        (client.post("/api/jobs", content=good), 400, "X-Filename header is missing"),
    ]
    for response, status, message in cases:
        assert response.status_code == status, response.text
        assert message in response.json()["error"], response.json()
    # Over the megapixel limit (0.01 MP = 10,000 pixels; the photo has 3,840): a larger one.
    wide = io.BytesIO()
    Image.new("RGB", (200, 100), (90, 90, 90)).save(wide, format="PNG")
    r = post(client, wide.getvalue(), name="wide.png")
    assert r.status_code == 413 and "200×100 is 0.0 megapixels; the limit is 0.01" in r.json()["error"]
    assert list(worker.workdir.iterdir()) == []  # nothing kept
    assert worker.jobs == {}


def test_queue_is_bounded_and_queued_jobs_cancel(tiny_model, tiny_variables, tmp_path, photo_bytes):
    worker = make_worker(tiny_model, tiny_variables, tmp_path, max_queue=2)
    client = TestClient(create_app(worker))  # not started: jobs stay queued
    first, second = (post(client, photo_bytes(seed=i), name=f"p{i}.png").json() for i in range(2))
    assert (first["position"], second["position"]) == (0, 1)
    full = post(client, photo_bytes(), name="third.png")
    assert full.status_code == 503 and "queue is full (2 photos)" in full.json()["error"]
    assert len(list(worker.workdir.iterdir())) == 2
    assert client.delete(f"/api/jobs/{first['id']}").json()["state"] == "cancelled"
    assert client.get(f"/api/jobs/{second['id']}").json()["position"] == 0
    assert len(list(worker.workdir.iterdir())) == 1
    assert post(client, photo_bytes(), name="third.png").status_code == 201  # room again


def test_only_the_servers_own_results_can_be_fetched(tiny_model, tiny_variables, tmp_path, photo_bytes):
    worker = make_worker(tiny_model, tiny_variables, tmp_path)
    client = TestClient(create_app(worker))
    job = post(client, photo_bytes()).json()
    for url in ("/api/jobs/nope", "/api/jobs/nope/files/uhdr", f"/api/jobs/{job['id']}/files/input",
                f"/api/jobs/{job['id']}/files/..%2F..%2Fetc%2Fpasswd", f"/api/jobs/{job['id']}/files/uhdr",
                f"/api/jobs/{job['id']}/view/before", f"/api/jobs/{job['id']}/view/upload"):
        r = client.get(url)
        assert r.status_code == 404 and r.json()["error"], url
    assert client.delete("/api/jobs/nope").status_code == 404


def test_finished_results_are_swept_after_the_keep_time_or_beyond_the_count(tiny_model, tiny_variables, tmp_path):
    worker = make_worker(tiny_model, tiny_variables, tmp_path, keep_seconds=60, max_kept=2)

    def finished_job(at):
        job_id, folder = worker.new_folder()
        (folder / "photo.uhdr.jpg").write_bytes(b"result")
        job = Job(id=job_id, name="photo", folder=folder, input_path=folder / "input.png", width=W, height=H)
        job.state, job.finished = "done", at
        worker.jobs[job_id] = job
        return folder

    first = finished_job(1000.0)
    assert worker.sweep(now=1000.0 + 59) == 0 and first.exists()
    assert worker.sweep(now=1000.0 + 61) == 1
    assert not first.exists() and worker.jobs == {}
    oldest, newer, newest = finished_job(1000.0), finished_job(1001.0), finished_job(1002.0)
    assert worker.sweep(now=1003.0) == 1  # three finished, two kept: the oldest goes
    assert not oldest.exists() and newer.exists() and newest.exists()


def test_command_line_help_and_a_taken_port(env):
    proc = subprocess.run([sys.executable, "-m", "hdrjax.serve", "--help"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0 and "--checkpoint" in proc.stdout and "127.0.0.1" in proc.stdout
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "hdrjax.serve", "--port", str(port)],
                              capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: 127.0.0.1:{port}: cannot listen there")
