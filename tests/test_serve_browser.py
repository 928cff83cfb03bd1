"""The web page in a real browser: the system's Chromium, driven by selenium.

`python -m hdrjax.serve` runs as a user would start it (a subprocess, --port 0) on a tiny
checkpoint, and the browser: loads the page, uploads a photo, waits for the result, moves the
exposure slider and checks the drawn image changes, downloads the Ultra HDR file and checks it
decodes to the reconstruction, and uploads a text file named .jpg (chosen, and dropped) to
see the page's error.

Chromium comes from the operating system's packages (.ci/run: apt-get install chromium
chromium-driver).  Where it is missing the test skips with the reason, except on a machine
that could install it (root with apt-get, as CI is): there a missing browser fails the test,
so CI never passes without having run it.
"""
import os
import shutil
import time

import numpy as np
import pytest

from hdrjax import predict
from hdrjax.models.build import NETWORKS
from hdrjax.weights import loading
from hdrjax.display import mapping, ultrahdr
from hdrjax.serve.browser import find_chromium
from hdrjax.serve.cli import spawn

# The server runs the one-pass engine (its --engine below) through the hallucination stage.
CONFIG = predict.PredictConfig(engine="one-pass", stages=NETWORKS[:3])

pytestmark = pytest.mark.slow


def chromium_or_skip():
    found = find_chromium()
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        pytest.fail("Chromium and chromedriver are missing although this machine can install them: "
                    "apt-get install chromium chromium-driver (.ci/run does)")
    pytest.skip("needs Chromium and chromedriver (Debian: apt-get install chromium chromium-driver)")


@pytest.fixture(scope="module")
def server(tiny_checkpoint, env):
    """`python -m hdrjax.serve` on the tiny checkpoint; yields (url, checkpoint folder)."""
    chromium_or_skip()
    ckpt = tiny_checkpoint
    proc, url = spawn(["--checkpoint", str(ckpt), "--port", "0", "--engine", "one-pass", "--brackets=-2,0,2"], env=env)
    try:
        yield url, ckpt
    finally:
        proc.terminate()  # uvicorn stops on SIGTERM; the server removes its results folder
        proc.wait(timeout=60)


@pytest.fixture
def browser(tmp_path):
    from hdrjax.serve.browser import chromium_driver

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = chromium_driver(tmp_path / "profile", downloads)
    driver.set_page_load_timeout(60)
    try:
        yield driver, downloads
    finally:
        driver.quit()


def wait_for(condition, timeout=300, what="the page"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_upload_view_expose_download_and_refuse_text(server, browser, tmp_path, assert_round_trip, photo_bytes):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, ckpt = server
    driver, downloads = browser
    driver.get(url)
    assert "hdrjax" in driver.title

    photo = tmp_path / "desk photo.png"
    photo.write_bytes(photo_bytes())
    driver.find_element(By.ID, "file").send_keys(str(photo))
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, '#jobs li[data-state="done"]'), what="the result")
    wait_for(lambda: driver.execute_script("return document.getElementById('after').width") > 0, what="the views")
    wait_for(lambda: driver.find_elements(By.ID, "dl-uhdr"), what="the Ultra HDR download")
    stats = driver.find_element(By.ID, "stats").text
    assert "Dynamic range, photo" in stats and "% of pixels" in stats

    # Moving the exposure slider redraws the reconstruction.
    drawn = driver.execute_script("return document.getElementById('after').toDataURL()")
    slider = driver.find_element(By.ID, "exposure")
    slider.click()  # the middle of the slider: 0 stops
    slider.send_keys(*([Keys.ARROW_LEFT] * 25))
    wait_for(lambda: driver.find_element(By.ID, "exposure-value").text == "-2.5 stops", 30, "the exposure label")
    wait_for(lambda: driver.execute_script("return document.getElementById('after').toDataURL()") != drawn, 30,
             "the redrawn image")

    # The Ultra HDR download decodes to the reconstruction (display light, test_display's tolerance).
    driver.find_element(By.ID, "dl-uhdr").click()
    target = downloads / "desk_photo.uhdr.jpg"
    wait_for(lambda: target.exists() and not list(downloads.glob("*.crdownload")), 60, "the download")
    from PIL import Image
    import io

    ldr = np.asarray(Image.open(io.BytesIO(photo_bytes())), np.float32) / 255.0
    model, variables, _, _ = loading.load_model(ckpt)
    expected = mapping.to_display(predict.reconstruct(model, variables, ldr, CONFIG).output)
    assert_round_trip(ultrahdr.decode(target.read_bytes()), expected)

    # A text file named .jpg: chosen with the file input, and dropped on the page.
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is not a photo\n")
    driver.find_element(By.ID, "file").send_keys(str(fake))
    driver.execute_script("""
        const dt = new DataTransfer();
        dt.items.add(new File(["not a photo either"], "dropped.jpg", {type: "image/jpeg"}));
        document.getElementById("drop").dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true}));
    """)
    failed = wait_for(lambda: [e.text for e in driver.find_elements(By.CSS_SELECTOR, '#jobs li[data-state="failed"]')]
                      if len(driver.find_elements(By.CSS_SELECTOR, '#jobs li[data-state="failed"]')) == 2 else None,
                      60, "the two error messages")
    assert any("notes.jpg: not an image this page reads" in t for t in failed), failed
    assert any("dropped.jpg: not an image this page reads" in t for t in failed), failed
