"""The app and the training report in a real browser: headless Chromium through Selenium.

`make test` installs Debian's chromium and chromium-driver where they are missing; these tests
skip only when neither they nor another Chrome can be found. Screenshots go to the test's
temporary folder; FACEGAN_UPDATE_SCREENSHOTS=1 also writes them to docs/ for the README, and
FACEGAN_SCREENSHOT_RUN=RUN shows that run instead of the tiny one (the README's screenshots).
"""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from procs import free_port, wait_for

pytest.importorskip("gradio")
webdriver = pytest.importorskip("selenium.webdriver")

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
DRIVERS = ("chromedriver",)
PAD = 2  # grid padding


def _which(names):
    return next((p for p in map(shutil.which, names) if p), None) or next(
        (p for p in ("/usr/bin/chromium", "/usr/lib/chromium/chromedriver") if os.path.exists(p)
         and os.path.basename(p).startswith(names[0][:6])), None)


@pytest.fixture(scope="module")
def browser():
    binary, driver = _which(BROWSERS), _which(DRIVERS)
    if not binary or not driver:
        pytest.skip("no chromium + chromedriver on this machine (make test installs them: "
                    "apt-get install chromium chromium-driver, as root)")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1100,1500", "--hide-scrollbars", "--allow-file-access-from-files"):
        opts.add_argument(arg)
    opts.binary_location = binary
    drv = webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def shown(request, tmp_path_factory):
    """(SOURCE for the app, run for the report, resolution)."""
    from facegan.eval.generator_io import load_generator
    from facegan.train.checkpoint import save_network

    run = os.environ.get("FACEGAN_SCREENSHOT_RUN")
    if run:
        return run, run, load_generator(run)[0].resolution
    # The tiny run's 8 steps leave its images flat gray (under 1 level of spread), which could not
    # tell a drawn image from a blank one: its generator with the last layer's weights scaled
    # x200 draws visible patterns (spread about 20 levels) through the same code.
    tiny_run = request.getfixturevalue("tiny_run")
    g, info = load_generator(tiny_run)
    g.main[-2].weight.data *= 200
    path = str(tmp_path_factory.mktemp("app") / "visible.safetensors")
    save_network(g, path, info["architecture"], {"summary": info["summary"]})
    return path, tiny_run, g.resolution


@pytest.fixture(scope="module")
def app_url(shown):
    port = free_port()
    env = dict(os.environ, PYTHONPATH=ROOT, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "facegan.cli.app", shown[0], "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
                            start_new_session=True)
    try:
        seen = []
        for line in proc.stdout:  # a loading line, then the URL (or one error line and the end)
            seen.append(line)
            if f"http://127.0.0.1:{port}/" in line:
                break
        assert seen and f"http://127.0.0.1:{port}/" in seen[-1], "".join(seen)[-2000:]
        yield f"http://127.0.0.1:{port}/"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _screenshot(drv, tmp_path, name):
    """Full-page PNG, palette-quantized (a README image, kept small); also to docs/ on request."""
    path = tmp_path / name
    drv.save_screenshot(str(path))
    im = Image.open(path).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    im.save(path, optimize=True)
    if os.environ.get("FACEGAN_UPDATE_SCREENSHOTS") == "1":
        shutil.copy(path, os.path.join(ROOT, "docs", name))
    return path


def _img(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return Image.open(io.BytesIO(r.read())).convert("RGB")


def _loaded(drv, selector, old=None, timeout=60):
    """(src, naturalWidth) of the <img> at `selector` once it has loaded (and its src differs from `old`)."""
    found = []

    def ready():
        got = drv.execute_script(
            f"const i = document.querySelector('{selector}');"
            "return i && i.complete && i.naturalWidth > 0 ? [i.src, i.naturalWidth] : null;")
        if got and got[0] != old:
            found.append(got)
        return bool(found)
    wait_for(ready, timeout, f"the image {selector}")
    return found[0]


def _set_number(drv, elem_id, value):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = drv.find_element(By.CSS_SELECTOR, f"#{elem_id} input")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(str(value), Keys.TAB)


def _tile_spread(grid: Image.Image, res: int) -> float:
    """Pixel spread inside the first image of a grid (not counting the white padding)."""
    return float(np.asarray(grid)[PAD:PAD + res, PAD:PAD + res].std())


def test_app_generates_in_the_browser(browser, app_url, shown, tmp_path):
    from selenium.webdriver.common.by import By

    res = shown[2]
    browser.get(app_url)
    wait_for(lambda: browser.find_elements(By.ID, "generate"), 60, "the app page")
    _set_number(browser, "count", 9)
    browser.find_element(By.ID, "generate").click()
    src, width = _loaded(browser, "#grid img")
    first = _img(src)
    side = 3 * res + 4 * PAD
    assert first.size == (side, side) and width == side
    assert _tile_spread(first, res) > 5  # not blank
    _set_number(browser, "seed", 1234)
    browser.find_element(By.ID, "generate").click()
    second = _img(_loaded(browser, "#grid img", old=src)[0])
    assert second.size == (side, side) and not np.array_equal(np.asarray(first), np.asarray(second))
    assert "9 images, seed 1234" in browser.find_element(By.ID, "grid-notes").text
    browser.find_element(By.ID, "interpolate").click()
    _loaded(browser, "#walk-gif")
    assert _loaded(browser, "#strip img")[1] == 12 * res + 13 * PAD
    assert "12 frames from seed 0 to seed 1" in browser.find_element(By.ID, "walk-notes").text
    path = _screenshot(browser, tmp_path, "app.png")
    assert os.path.getsize(path) < 300_000


def test_report_images_all_load(browser, shown, tmp_path):
    from facegan.cli.report import main as report

    run = shown[1]
    assert report([run]) == 0
    browser.get("file://" + os.path.join(run, "report.html"))
    wait_for(lambda: browser.execute_script(
        "return Array.from(document.images).every(i => i.complete);"), 30, "the report's images")
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth]);")
    assert len(images) >= 2, images
    assert all(width > 0 for _, width in images), images  # no broken image
    path = _screenshot(browser, tmp_path, "report.png")
    assert os.path.getsize(path) < 300_000


def _api(url, name, data):
    """Call a Gradio endpoint over HTTP as any client could; returns (event, payload)."""
    req = urllib.request.Request(f"{url}gradio_api/call/{name}", data=json.dumps({"data": data}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        event_id = json.load(r)["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/{name}/{event_id}", timeout=60) as r:
        text = r.read().decode()
    event = [ln.split(": ", 1)[1] for ln in text.splitlines() if ln.startswith("event: ")][-1]
    payload = [ln.split(": ", 1)[1] for ln in text.splitlines() if ln.startswith("data: ")][-1]
    return event, json.loads(payload)


def test_http_api_bounds_hostile_values(app_url, shown):
    res = shown[2]
    t0 = time.time()
    event, (grid, notes) = _api(app_url, "generate", [10 ** 40, 10 ** 9, 1e300])
    assert event == "complete" and _img(grid["url"]).size == (8 * res + 9 * PAD,) * 2
    assert "count: 1000000000 is outside 1..64, used 64" in notes and "modulo 2**31" in notes
    event, (grid, notes) = _api(app_url, "generate", [-7, -3, -0.5])
    assert event == "complete" and _img(grid["url"]).size == (res, res) and "seed 2147483641" in notes
    event, (grid, notes) = _api(app_url, "generate", ["ninety", "all of them", "psi"])
    assert event == "complete" and notes.count("is not a number") == 3
    event, (strip, _, notes) = _api(app_url, "interpolate", [1, 2, 10 ** 12, 0.8])
    assert event == "complete" and _img(strip["url"]).size == (32 * res + 33 * PAD, res + 2 * PAD)
    assert time.time() - t0 < 60
