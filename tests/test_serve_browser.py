"""The editor page in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven
by Selenium) against a real ``fastinpaint serve`` process: open a development photo, paint a
stroke with real mouse events, run, compare the displayed pixels with the original and with the
API's own answer, undo / redo, inpaint again on the result, and an oversized upload.

Skipped, saying why, only where no Chromium (or its driver) is installed; ``.ci/run`` installs them.
"""

from __future__ import annotations

import base64
import io
import json
import os
import pathlib
import shutil
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="the serve extra (pip install 'fastinpaint[serve]') is not installed")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

PHOTO = "astronaut"
SHARED_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"  # as conftest's shared_data
SOLID = (17, 201, 140)
MAX_PIXELS = 20_000  # the 128 px photo (12 288 px) fits, the 256 px one (49 152 px) does not


def _find(*candidates):
    for c in candidates:
        path = shutil.which(c) if os.sep not in c else (c if os.access(c, os.X_OK) else None)
        if path:
            return path
    return None


# CHROMIUM / CHROMEDRIVER, when set, name the only binaries to use
CHROMIUM = _find(*([os.environ["CHROMIUM"]] if "CHROMIUM" in os.environ else
                   ["chromium", "chromium-browser", "/usr/bin/chromium"]))
DRIVER = _find(*([os.environ["CHROMEDRIVER"]] if "CHROMEDRIVER" in os.environ else
                 ["chromedriver", "/usr/bin/chromedriver"]))
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason=f"no Chromium found (chromium: {CHROMIUM}, chromedriver: {DRIVER}): the browser tests need Debian's "
           "packages: apt-get install chromium chromium-driver (.ci/run installs them)",
)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """small.png (128 px wide) and big.png (256 px wide) of a development photo."""
    shared = SHARED_DATA
    if not shared.is_dir():
        pytest.skip(f"development data not found at {shared}")
    folder = tmp_path_factory.mktemp("photos")
    img = Image.open(shared / "photos" / f"{PHOTO}.png").convert("RGB")
    for name, width in (("small.png", 128), ("big.png", 256)):
        img.resize((width, round(img.height * width / img.width)), Image.LANCZOS).save(folder / name)
    # the photo with a solid band on its right, a colour that occurs nowhere else (source region test)
    split = np.asarray(img.resize((128, 128), Image.LANCZOS)).copy()
    assert not (split == SOLID).all(axis=2).any()
    split[:, 96:] = SOLID
    Image.fromarray(split).save(folder / "split.png")
    return folder


@pytest.fixture(scope="module")
def server(serve_process, photos):
    _, url = serve_process("--max-pixels", MAX_PIXELS, "--input", photos)
    return url


@pytest.fixture(scope="module")
def saving_server(serve_process, photos, tmp_path_factory):
    """(url, --output-dir): a server that also saves every result."""
    out = tmp_path_factory.mktemp("saved")
    _, url = serve_process("--output-dir", out, "--input", photos)
    return url, out


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,800", "--force-color-profile=srgb",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


# --------------------------------------------------------------------------------------------------
# helpers: the page's state and pixels, real mouse strokes
# --------------------------------------------------------------------------------------------------
def wait_state(driver, *states, timeout=90) -> str:
    WebDriverWait(driver, timeout).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state")
                                         in states)
    return driver.find_element(By.TAG_NAME, "body").get_attribute("data-state")


def canvas_pixels(driver, canvas_id) -> np.ndarray:
    """(H, W, 4) uint8 of a canvas, read through its own PNG encoding (lossless)."""
    url = driver.execute_script(f"return document.getElementById('{canvas_id}').toDataURL('image/png');")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGBA"))


def open_image(driver, path):
    driver.find_element(By.ID, "file").send_keys(str(path))
    return wait_state(driver, "ready")


def to_screen(driver, points):
    """Image pixel coordinates -> viewport coordinates, from where the image is drawn on screen."""
    rect = driver.execute_script("const r = document.getElementById('image').getBoundingClientRect();"
                                 "return [r.left, r.top, r.width / document.getElementById('image').width];")
    left, top, scale = rect
    return [(round(left + (x + 0.5) * scale), round(top + (y + 0.5) * scale)) for x, y in points]


def stroke(driver, points):
    """Press the left button at the first point, move through the others, release: real pointer events."""
    actions = ActionChains(driver)
    pointer = actions.w3c_actions.pointer_action
    screen = to_screen(driver, points)
    pointer.move_to_location(*screen[0])
    pointer.pointer_down()
    for x, y in screen[1:]:
        pointer.move_to_location(x, y)
    pointer.pointer_up()
    actions.perform()


def keys(driver, *combo):
    actions = ActionChains(driver)
    for k in combo[:-1]:
        actions.key_down(k)
    actions.send_keys(combo[-1])
    for k in reversed(combo[:-1]):
        actions.key_up(k)
    actions.perform()


def api_inpaint(url, image_path, hole) -> np.ndarray:
    """The server's own answer for the same image and mask (an independent request)."""
    buf = io.BytesIO()
    Image.fromarray((hole * 255).astype(np.uint8)).save(buf, format="PNG")
    req = {"image": base64.b64encode(image_path.read_bytes()).decode(),
           "mask": base64.b64encode(buf.getvalue()).decode()}
    request = urllib.request.Request(url + "api/v1/inpaint", data=json.dumps(req).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as resp:
        return np.asarray(Image.open(io.BytesIO(resp.read())).convert("RGB"))


# --------------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------------
def test_paint_run_compare_undo(browser, server, photos, tmp_path):
    started = time.monotonic()
    browser.get(server)
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#method option"))
    assert open_image(browser, photos / "small.png") == "ready"
    original = np.asarray(Image.open(photos / "small.png"))
    h, w = original.shape[:2]
    shown = canvas_pixels(browser, "image")
    assert shown.shape[:2] == (h, w) and np.array_equal(shown[..., :3], original)  # the canvas shows the file

    path = [(30, 40), (50, 44), (70, 48), (90, 50)]
    stroke(browser, path)
    hole = canvas_pixels(browser, "hole-overlay")[..., 3] > 127
    for x, y in path:
        assert hole[y, x], f"the stroke did not paint image pixel ({x}, {y})"
    assert not hole[5, 5] and not hole[h - 5, w - 5]
    assert 0.02 < hole.mean() < 0.5

    browser.find_element(By.ID, "run").click()
    assert wait_state(browser, "done", "error") == "done", browser.find_element(By.ID, "error").text
    result = canvas_pixels(browser, "image")[..., :3]
    assert np.array_equal(result[~hole], original[~hole])  # untouched outside the stroke, bit for bit
    changed = np.abs(result[hole].astype(int) - original[hole].astype(int)).max(axis=1) > 0
    assert changed.mean() > 0.5
    # the page sent the full-resolution image and exactly the painted mask
    assert np.array_equal(result, api_inpaint(server, photos / "small.png", hole))
    assert (canvas_pixels(browser, "hole-overlay")[..., 3] == 0).all()  # the painted hole is cleared
    assert "done in" in browser.find_element(By.ID, "status").text

    shot = tmp_path / "serve-result.png"
    browser.save_screenshot(str(shot))
    assert Image.open(shot).size[0] >= 800
    if os.environ.get("FASTINPAINT_SCREENSHOT"):  # how the README's screenshot is made
        shutil.copy(shot, os.environ["FASTINPAINT_SCREENSHOT"])

    # Compare (hold): the image before the run while pressed
    compare = browser.find_element(By.ID, "compare")
    ActionChains(browser).click_and_hold(compare).perform()
    assert np.array_equal(canvas_pixels(browser, "image")[..., :3], original)
    ActionChains(browser).release(compare).perform()
    assert np.array_equal(canvas_pixels(browser, "image")[..., :3], result)

    # the run was one undo step: Ctrl+Z brings back the original and the painted hole
    keys(browser, Keys.CONTROL, "z")
    assert np.array_equal(canvas_pixels(browser, "image")[..., :3], original)
    assert np.array_equal(canvas_pixels(browser, "hole-overlay")[..., 3] > 127, hole)
    keys(browser, Keys.CONTROL, Keys.SHIFT, "z")  # redo
    assert np.array_equal(canvas_pixels(browser, "image")[..., :3], result)

    # inpaint again on the result: a second stroke and run; two undos lead back to the original
    stroke(browser, [(100, 20), (110, 30)])
    second_hole = canvas_pixels(browser, "hole-overlay")[..., 3] > 127
    browser.find_element(By.ID, "run").click()
    assert wait_state(browser, "done", "error") == "done"
    second = canvas_pixels(browser, "image")[..., :3]
    assert np.array_equal(second[~second_hole], result[~second_hole])
    assert not np.array_equal(second, result)
    for _ in range(2):  # the second run, then the second stroke
        keys(browser, Keys.CONTROL, "z")
    assert np.array_equal(canvas_pixels(browser, "image")[..., :3], result)
    keys(browser, Keys.CONTROL, "z")  # the first run
    assert np.array_equal(canvas_pixels(browser, "image")[..., :3], original)
    assert time.monotonic() - started < 120


def test_oversized_upload_shows_the_servers_error(browser, server, photos):
    browser.get(server)
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#method option"))
    assert open_image(browser, photos / "big.png") == "ready"
    stroke(browser, [(60, 60), (120, 80)])
    browser.find_element(By.ID, "run").click()
    assert wait_state(browser, "done", "error") == "error"
    error = browser.find_element(By.ID, "error")
    assert error.is_displayed()
    assert f"413: field 'image': image of 256x" in error.text and f"limit of {MAX_PIXELS} pixels" in error.text
    # the page still works: the image is unchanged and a smaller one runs
    big = np.asarray(Image.open(photos / "big.png"))
    assert np.array_equal(canvas_pixels(browser, "image")[..., :3], big)


def test_server_input_folder_is_listed(browser, server):
    browser.get(server)
    select = WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "inputs"))
    WebDriverWait(browser, 30).until(lambda d: select.is_displayed())
    names = [o.get_attribute("value") for o in select.find_elements(By.TAG_NAME, "option")]
    assert names == ["", "big.png", "small.png", "split.png"]
    select.find_element(By.CSS_SELECTOR, "option[value='small.png']").click()
    assert wait_state(browser, "ready") == "ready"
    assert canvas_pixels(browser, "image").shape[1] == 128


def test_source_region_limits_what_the_fill_copies(browser, server, photos):
    """"Copy from" painted inside the solid band: every filled pixel takes the band's colour. Without
    it (the same hole, after undoing the source strokes) the fill comes from the photo."""
    browser.get(server)
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#method option"))
    assert open_image(browser, photos / "split.png") == "ready"
    stroke(browser, [(40, 50), (60, 50)])  # the hole, in the photo
    hole = canvas_pixels(browser, "hole-overlay")[..., 3] > 127
    browser.find_element(By.ID, "tool-allow").click()
    stroke(browser, [(112, 8), (112, 60), (112, 119)])  # brush 24: x 100..124, inside the band
    source = canvas_pixels(browser, "source-overlay")[..., 3] > 127
    assert source.any() and not source[:, :96].any()
    browser.find_element(By.ID, "run").click()
    assert wait_state(browser, "done", "error") == "done", browser.find_element(By.ID, "error").text
    filled = canvas_pixels(browser, "image")[..., :3][hole]
    assert (filled == SOLID).all()

    keys(browser, Keys.CONTROL, "z")  # the run
    keys(browser, Keys.CONTROL, "z")  # the source stroke
    assert not (canvas_pixels(browser, "source-overlay")[..., 3] > 127).any()
    browser.find_element(By.ID, "run").click()
    assert wait_state(browser, "done", "error") == "done"
    free = canvas_pixels(browser, "image")[..., :3][hole]
    assert (free != SOLID).any(axis=1).mean() > 0.9
    assert not np.array_equal(free, np.asarray(Image.open(photos / "split.png"))[hole])  # a new fill


def test_download_at_full_resolution(browser, server, photos, tmp_path):
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    browser.get(server)
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#method option"))
    assert open_image(browser, photos / "small.png") == "ready"
    stroke(browser, [(20, 100), (60, 110)])
    browser.find_element(By.ID, "run").click()
    assert wait_state(browser, "done", "error") == "done"
    shown = canvas_pixels(browser, "image")[..., :3]
    for button, name, fmt in (("download-png", "small-inpainted.png", "PNG"),
                              ("download-jpeg", "small-inpainted.jpg", "JPEG")):
        browser.find_element(By.ID, button).click()
        path = tmp_path / name
        WebDriverWait(browser, 30).until(lambda d: path.is_file() and path.stat().st_size > 0)
        time.sleep(0.2)  # the browser renames the finished download into place; let it settle
        img = Image.open(path)
        assert img.format == fmt and img.size == (128, 128)
        if fmt == "PNG":  # the server's own bytes: exactly what is shown
            assert np.array_equal(np.asarray(img.convert("RGB")), shown)
        else:
            assert np.abs(np.asarray(img).astype(int) - shown.astype(int)).mean() < 4


def test_zoom_and_pan_keep_strokes_on_the_right_pixels(browser, server, photos):
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin

    browser.get(server)
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#method option"))
    assert open_image(browser, photos / "small.png") == "ready"
    viewport = browser.find_element(By.ID, "viewport")
    keys(browser, "1")  # actual pixels
    assert browser.find_element(By.ID, "zoom-value").text == "100%"
    ActionChains(browser).scroll_from_origin(ScrollOrigin.from_element(viewport), 0, -400).perform()
    zoom = int(browser.find_element(By.ID, "zoom-value").text.rstrip("%"))
    assert zoom > 150
    stroke(browser, [(70, 30), (80, 30)])
    hole = canvas_pixels(browser, "hole-overlay")[..., 3] > 127
    assert hole[30, 70] and hole[30, 80] and not hole[100, 20]

    before = browser.find_element(By.ID, "image").rect
    actions = ActionChains(browser).key_down(Keys.SPACE)  # Space + drag: pan, no paint
    actions.move_to_element(viewport).click_and_hold().move_by_offset(-60, -40).release().key_up(Keys.SPACE)
    actions.perform()
    after = browser.find_element(By.ID, "image").rect
    assert (round(after["x"] - before["x"]), round(after["y"] - before["y"])) == (-60, -40)
    assert np.array_equal(canvas_pixels(browser, "hole-overlay")[..., 3] > 127, hole)


def test_status_line_says_where_the_result_was_saved_or_why_not(browser, saving_server, photos):
    """With --output-dir the status line names the file the server saved; once the folder is gone,
    the result is still shown (the server answers 200) and the status line says, as a warning, that
    it was not saved and why (the page said "done" alone either way)."""
    url, out = saving_server
    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#method option"))
    assert open_image(browser, photos / "small.png") == "ready"
    stroke(browser, [(30, 40), (60, 44)])
    browser.find_element(By.ID, "run").click()
    assert wait_state(browser, "done", "error") == "done", browser.find_element(By.ID, "error").text
    status = browser.find_element(By.ID, "status")
    saved = list(out.iterdir())
    assert len(saved) == 1 and status.text.endswith(f" · saved as {saved[0].name}"), status.text
    assert "warning" not in status.get_attribute("class")
    np.testing.assert_array_equal(np.asarray(Image.open(saved[0]).convert("RGB")),
                                  canvas_pixels(browser, "image")[..., :3])

    shutil.rmtree(out)
    stroke(browser, [(90, 100), (110, 104)])
    browser.find_element(By.ID, "run").click()
    assert wait_state(browser, "done", "error") == "done", browser.find_element(By.ID, "error").text
    text = status.get_attribute("title")  # the whole line (the shown one may be cut to the toolbar)
    assert text.startswith("done in ") and f" · not saved: could not save the result to {out}: " in text, text
    assert "No such file" in text and "warning" in status.get_attribute("class")
    assert not browser.find_element(By.ID, "error").is_displayed()
