"""The browser editor: its build, and the page in headless Chromium on WebGPU (SwiftShader) and on wasm.

The browser tests need Debian's chromium and chromium-driver, selenium (requirements-demo.txt) and
LiteRT.js (`npm ci` in tf_ganimation/editing/web_page); .ci/run installs all of them. They skip, with
the reason, where one is missing.
"""

import base64
import io
import json
import subprocess
import sys
import urllib.parse

import numpy as np
import pytest
from PIL import Image

from tf_ganimation.core import action_units
from tf_ganimation.editing import static_page
from tf_ganimation.export import litert, tflite

from conftest import PROJECT_ROOT, headless_chromium, tiny_generator

CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--enable-unsafe-webgpu",
                  "--enable-features=Vulkan", "--use-angle=swiftshader", "--use-webgpu-adapter=swiftshader",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1000")
SQUARE = (40, 24, 96)  # x, y, side in the photo's pixels


def _installed() -> bool:
    return (static_page.ASSETS_DIR / "node_modules" / "@litertjs" / "core" / "package.json").is_file()


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory):
    out = tmp_path_factory.mktemp("page_model") / "tiny_fp16.tflite"
    return tflite.convert_generator(tiny_generator(0), 32, out).model_path


@pytest.fixture(scope="module")
def page_dir(tiny_tflite, tmp_path_factory):
    if not _installed():
        pytest.skip(f"LiteRT.js is not installed: run `npm ci` in {static_page.ASSETS_DIR}")
    return static_page.build_page(tiny_tflite, tmp_path_factory.mktemp("page") / "web")


def test_the_config_has_the_17_aus_with_facs_names_and_the_presets():
    config = static_page.page_config(32)
    assert [unit["name"] for unit in config["action_units"]] == list(action_units.AU_NAMES)
    assert config["action_units"][8] == {"name": "AU12", "description": "lip corner puller"}
    assert list(config["presets"]) == ["happy", "sad", "surprise", "fear", "anger", "disgust", "contempt", "neutral"]
    np.testing.assert_allclose(config["presets"]["happy"], action_units.preset("happy"), atol=1e-4)
    assert config["presets"]["happy"][8] == 1.0 and config["image_size"] == 32 and config["gpu_precision"] == "fp32"


def test_the_page_folder_holds_everything_it_loads(page_dir, tiny_tflite):
    for name in ("index.html", "editor.js", "style.css", "model.tflite", "config.json"):
        assert (page_dir / name).is_file(), name
    assert (page_dir / "model.tflite").read_bytes() == tiny_tflite.read_bytes()
    assert list((page_dir / "vendor/litertjs/core/wasm").glob("*.wasm"))
    assert (page_dir / "vendor/litertjs/wasm-utils/dist/index.js").is_file()
    assert json.loads((page_dir / "config.json").read_text())["model_file"] == "model.tflite"
    html = (page_dir / "index.html").read_text() + (page_dir / "editor.js").read_text()
    assert "http://" not in html.replace("http://127.0.0.1", "") and "https://" not in html  # no CDN
    assert not list(page_dir.parent.glob(".web.*"))  # the staging folder is gone


def test_bad_builds_name_the_problem(tiny_tflite, tmp_path, page_dir):
    with pytest.raises(FileNotFoundError, match="missing.tflite not found"):
        static_page.build_page(tmp_path / "missing.tflite", tmp_path / "web")
    with pytest.raises(FileNotFoundError, match=r"run `npm ci` in .*web_page"):
        static_page.build_page(tiny_tflite, tmp_path / "web", node_modules=tmp_path / "nothing")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "mine.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="photos exists and is not a page built here"):
        static_page.build_page(tiny_tflite, tmp_path / "photos")
    with pytest.raises(ValueError, match=r"gpu_precision='fp64' is invalid"):
        static_page.build_page(tiny_tflite, tmp_path / "web", gpu_precision="fp64")
    with pytest.raises(FileNotFoundError, match="has no built page"):
        static_page.serve(tmp_path / "photos")
    rebuilt = static_page.build_page(tiny_tflite, page_dir)  # a page built before is replaced
    assert (rebuilt / "index.html").is_file()


# === The page in headless Chromium ===


@pytest.fixture(scope="module")
def browser(page_dir, tmp_path_factory):
    driver = headless_chromium(CHROMIUM_FLAGS, tmp_path_factory.mktemp("chromium"), "requirements-demo.txt")
    server, url = static_page.serve(page_dir, port=0, in_thread=True)
    try:
        yield driver, url
    finally:
        driver.quit()
        server.shutdown()


def _wait(driver, script, timeout=120):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda _: driver.execute_script(script))


def _photo(path) -> np.ndarray:
    """A 200 x 160 RGB test photo with texture everywhere, so that any changed pixel shows."""
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (160, 200, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def _open(driver, url, accelerator):
    driver.get(f"{url}?accelerator={accelerator}")
    _wait(driver, "return window.editor && document.getElementById('runtime').textContent.startsWith('LiteRT.js')")


@pytest.mark.slow
@pytest.mark.parametrize("accelerator,badge", [("webgpu", "LiteRT.js on WebGPU"), ("wasm", "LiteRT.js on wasm")])
def test_the_page_edits_like_python_and_keeps_the_rest_of_the_photo_bit_exact(browser, page_dir, tmp_path,
                                                                               accelerator, badge):
    driver, url = browser
    _open(driver, url, accelerator)
    assert driver.find_element("id", "runtime").text.startswith(badge)
    photo = _photo(tmp_path / "photo.png")
    driver.find_element("id", "photo-input").send_keys(str(tmp_path / "photo.png"))
    _wait(driver, "return editor.state.edits >= 1")
    driver.execute_script("return editor.setSquare(...arguments)", *SQUARE)
    driver.execute_script("document.getElementById('preset-happy').click()")
    _wait(driver, "return editor.state.edits >= 3 && editor.state.aus[8] === 1")
    state = driver.execute_script("const s = editor.state; return {images: Array.from(s.lastInput.images), "
                                  "aus: Array.from(s.lastInput.aus), output: Object.fromEntries(Object.entries("
                                  "s.lastOutput).map(([k, v]) => [k, Array.from(v)])), square: s.square}")
    assert state["square"] == {"x": SQUARE[0], "y": SQUARE[1], "side": SQUARE[2]}
    images = np.asarray(state["images"], np.float32).reshape(1, 32, 32, 3)
    aus = np.asarray(state["aus"], np.float32).reshape(1, 17)
    np.testing.assert_allclose(aus[0], action_units.preset("happy"), atol=1e-6)
    expected = litert.TFLiteEditModel(page_dir / "model.tflite").edit(images, aus)  # LiteRT's CPU interpreter
    for name, shape in (("images", (1, 32, 32, 3)), ("attention", (1, 32, 32, 1)), ("color", (1, 32, 32, 3))):
        np.testing.assert_allclose(np.asarray(state["output"][name], np.float32).reshape(shape), expected[name],
                                   atol=1e-4, err_msg=f"{name} on {accelerator}")

    png = driver.execute_script("return editor.editedPng()").split(",", 1)[1]
    edited = np.asarray(Image.open(io.BytesIO(base64.b64decode(png))).convert("RGB"))
    x, y, side = SQUARE
    outside = np.ones(photo.shape[:2], bool)
    outside[y:y + side, x:x + side] = False
    assert edited.shape == photo.shape
    np.testing.assert_array_equal(edited[outside], photo[outside])  # bit-exact outside the face square
    assert np.any(edited[~outside] != photo[~outside])  # and the edit changed the square
    driver.save_screenshot(str(tmp_path / f"page_{accelerator}.png"))


@pytest.mark.slow
def test_a_non_image_gets_a_clear_message_and_every_request_stays_on_the_machine(browser, tmp_path):
    driver, url = browser
    _open(driver, url, "wasm")
    (tmp_path / "notes.txt").write_text("not a photo")
    driver.find_element("id", "photo-input").send_keys(str(tmp_path / "notes.txt"))
    _wait(driver, "return document.getElementById('status').classList.contains('error')", timeout=30)
    message = driver.find_element("id", "status").text
    assert message.startswith("notes.txt is not an image (text/plain)") and "PNG, JPEG or WebP" in message
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    driver.find_element("id", "photo-input").send_keys(str(tmp_path / "broken.png"))
    _wait(driver, "return document.getElementById('status').textContent.startsWith('broken.png')", timeout=30)
    assert "could not be read as an image" in driver.find_element("id", "status").text

    hosts = set()
    for entry in driver.get_log("performance"):  # every request of every page load in this browser
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            request_url = message["params"]["request"]["url"]
            if request_url.startswith(("http:", "https:", "ws:", "wss:")):
                hosts.add(urllib.parse.urlsplit(request_url).hostname)
    assert hosts == {"127.0.0.1"}


@pytest.mark.slow
def test_the_script_builds_the_page_and_reports_user_errors(tiny_tflite, tmp_path):
    if not _installed():
        pytest.skip(f"LiteRT.js is not installed: run `npm ci` in {static_page.ASSETS_DIR}")
    script = str(PROJECT_ROOT / "scripts" / "export_web.py")
    done = subprocess.run([sys.executable, script, f"--tflite={tiny_tflite}", f"--out={tmp_path / 'web'}"],
                          check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"wrote {tmp_path / 'web'}" in done.stdout and (tmp_path / "web" / "model.tflite").is_file()
    done = subprocess.run([sys.executable, script, f"--tflite={tmp_path / 'none.tflite'}", f"--out={tmp_path / 'x'}"],
                          check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "error: " in done.stderr and "none.tflite not found" in done.stderr
    assert "Traceback" not in done.stderr
