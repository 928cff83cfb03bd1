"""The README's screenshot of the web page's result view, taken in the system's Chromium.

    python -m experiments.display.screenshot          # writes docs/images/serve.png

Starts `python -m hdrjax.serve` with the shipped model, simulates the photo the README's
first example uses (`python -m hdrjax.simulate ../shared/data/real_hdr/Desk.exr --exposure 1`),
uploads it through the page's file input, waits for the result and the Ultra HDR image, sets
the exposure slider to `--exposure` stops (where the recovered highlights show) and saves the
window as an 8-bit palette PNG (small enough to commit).
"""
from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import tempfile
import time

from .. import results_io

ROOT = pathlib.Path(__file__).resolve().parents[2]  # the repository
SCENE = ROOT.parent / "shared" / "data" / "real_hdr" / "Desk.exr"


def wait_for(condition, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", default=str(ROOT / "docs" / "images" / "serve.png"))
    p.add_argument("--exposure", type=float, default=-1.5, help="stops the exposure slider is set to")
    p.add_argument("--size", default="1280x1080", help="browser window, WIDTHxHEIGHT")
    args = p.parse_args(argv)
    from PIL import Image
    from selenium.webdriver.common.by import By

    from hdrjax.serve.browser import chromium_driver, find_chromium

    if find_chromium() is None:
        raise SystemExit("error: needs chromium and chromedriver (apt-get install chromium chromium-driver)")
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="serve-screenshot-") as tmp:
        tmp = pathlib.Path(tmp)
        photo = tmp / "desk.png"
        subprocess.run([sys.executable, "-m", "hdrjax.simulate", str(SCENE), "--output", str(photo), "--exposure", "1"],
                       check=True, capture_output=True)
        from hdrjax.serve.cli import spawn

        server, url = spawn(["--port", "0", "-q"])
        driver = None
        try:
            (tmp / "downloads").mkdir()
            driver = chromium_driver(tmp / "profile", tmp / "downloads", size=(width, height))
            driver.get(url)
            driver.find_element(By.ID, "file").send_keys(str(photo))
            wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, '#jobs li[data-state="done"]'), 900, "the result")
            wait_for(lambda: driver.execute_script(
                "const i = document.getElementById('hdr-img'); return i.complete && i.naturalWidth > 0"), 60, "the HDR "
                                                                                                              "image")
            driver.execute_script(
                "const e = document.getElementById('exposure'); e.value = arguments[0];"
                "e.dispatchEvent(new Event('input'));", args.exposure)
            time.sleep(1.0)  # one animation frame redraws both views
            shot = tmp / "shot.png"
            driver.save_screenshot(str(shot))
        finally:
            if driver is not None:
                driver.quit()
            server.terminate()
            server.wait(timeout=60)
        # A 256-colour palette keeps the file small; the page's flat panels lose nothing.
        palette = Image.open(shot).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
        out = results_io.write_image(args.output, lambda path: palette.save(path, optimize=True))
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
