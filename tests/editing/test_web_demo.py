"""Tests for tf_ganimation/editing/web_demo.py and scripts/demo.py: a tiny untrained model (32 px, 8 filters).

The page's logic is tested without a browser; the tests marked slow serve the page and drive headless
Chromium through Selenium (Debian's chromium and chromium-driver; .ci/run installs them), or run the
script. They skip with the reason when gradio, selenium, Chromium or the shared photos are missing.
Set DEMO_SCREENSHOT=docs/demo_screenshot.png to also write the page's screenshot there (a small copy).
"""

import io
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

import numpy as np
import pytest
from PIL import Image

from tf_ganimation.core import action_units, image_files
from tf_ganimation.editing import web_demo
from tf_ganimation.export import backends, saved_model
from tf_ganimation.faces import blending, detection
from tf_ganimation.model import edit_model

from conftest import PHOTOS_DIR, PROJECT_ROOT, TINY_MODEL, headless_chromium, tiny_generator

SIZE = TINY_MODEL.image_size
HAPPY = action_units.preset("happy")
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1050")


def _astronaut_path():
    if not PHOTOS_DIR.is_dir():
        pytest.skip(f"shared test photos not found at {PHOTOS_DIR}")
    return str(PHOTOS_DIR / "astronaut.png")


def _pattern(height=48, width=64) -> np.ndarray:
    rows, columns = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([3 * columns, 5 * rows, np.full_like(rows, 120)], axis=-1).astype(np.uint8)


def _bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, ~60 bytes on disk."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def model():
    """No critic: the faces start neutral."""
    return edit_model.KerasEditModel(tiny_generator(), SIZE)


@pytest.fixture(scope="module")
def detector():
    return detection.FaceDetector()


@pytest.fixture
def demo(model, detector):
    return web_demo.DemoEditor(model, web_demo.DemoConfig(), detector)


# === The page's logic, without a browser ===


def test_sliders_are_the_17_aus_with_their_facs_names_and_presets_are_the_expressions():
    labels = [web_demo.slider_label(name) for name in action_units.AU_NAMES]
    assert len(labels) == 17 and labels[8] == "AU12 lip corner puller" and labels[-1] == "AU45 blink"
    assert set(web_demo.PRESET_BUTTONS) == set(action_units.PRESETS) and len(web_demo.PRESET_BUTTONS) == 8


def test_config_serves_this_machine_only_by_default_and_rejects_bad_values():
    config = web_demo.DemoConfig()
    assert (config.host, config.share, config.max_pixels) == ("127.0.0.1", False, image_files.MAX_PIXELS)
    for field, value, expected in [("port", 0, r"\[1, 65535\]"), ("port", 70000, r"\[1, 65535\]"),
                                   ("host", "", "127.0.0.1"), ("max_queue", 0, "> 0"), ("gif_frames", 1, r"\[2, 120\]"),
                                   ("gif_fps", 0, r"\(0, 50\]"), ("max_file_size", 1.5, "> 0")]:
        with pytest.raises(ValueError, match=rf"{field}={value!r} is invalid: expected .*{expected}"):
            web_demo.DemoConfig(**{field: value})


def test_example_photos_lists_photo_files_only(tmp_path):
    for name in ("b.png", "a.JPG", "notes.txt", "c.webp"):
        (tmp_path / name).write_bytes(b"x")
    assert [os.path.basename(path) for path in web_demo.example_photos(tmp_path)] == ["a.JPG", "b.png", "c.webp"]
    assert web_demo.example_photos(tmp_path / "absent") == () == web_demo.example_photos(None)


def test_photo_key_is_the_pixels_not_the_file(tmp_path):
    photo = _pattern()
    Image.fromarray(photo).save(tmp_path / "a.png")
    Image.fromarray(photo).save(tmp_path / "b.webp", lossless=True)
    keys = {web_demo.photo_key(image_files.read_photo(tmp_path / name), False) for name in ("a.png", "b.webp")}
    assert len(keys) == 1
    changed = photo.copy()
    changed[0, 0, 0] += 1
    assert web_demo.photo_key(changed, False) not in keys and web_demo.photo_key(photo, True) not in keys


def test_a_face_is_found_once_and_a_slider_release_reruns_only_the_generator(demo, monkeypatch):
    result = web_demo.on_photo(demo, _astronaut_path(), False, True)
    assert result["status"] == "astronaut.png (512x512): 1 face found; start AUs neutral (the model has no critic)."
    assert result["sliders"] == [0.0] * 17 and result["edited"].shape == (512, 512, 3)
    assert result["attention"].shape == result["color"].shape == (256, 256, 3)  # 32 px enlarged 8x
    assert demo.detections == 1
    monkeypatch.setattr(demo.face_editor, "find_faces", lambda *args: pytest.fail("detection ran again"))
    monkeypatch.setattr(image_files, "read_photo", lambda *args, **kwargs: pytest.fail("photo decoded again"))
    edited = web_demo.on_edit(demo, result["state"], HAPPY)
    assert edited["status"].startswith(result["status"] + " Edited in ")
    loaded = demo.cached(result["state"]["key"])
    region = blending.face_region(loaded.crops[0].transform, 512, 512)
    photo = loaded.photo
    assert np.array_equal(edited["edited"][~region], photo[~region])  # bit-exact outside the crop square
    assert not np.array_equal(edited["edited"][region], photo[region])
    assert not np.array_equal(edited["edited"], result["edited"])  # the AUs changed the face
    assert np.array_equal(edited["edited"], demo.face_editor.edit(photo, loaded.crops, HAPPY))  # the CLI's edit


def test_the_same_pixels_in_another_file_hit_the_cache(demo, tmp_path):
    copy = tmp_path / "copy.webp"
    Image.open(_astronaut_path()).save(copy, lossless=True)
    first = web_demo.on_photo(demo, _astronaut_path(), False, False)
    second = web_demo.on_photo(demo, str(copy), False, False)
    assert demo.detections == 1 and first["state"]["key"] == second["state"]["key"]
    assert second["status"].startswith("copy.webp (512x512)")


def test_the_cache_is_bounded_and_a_dropped_photo_is_read_again(model, tmp_path):
    demo = web_demo.DemoEditor(model, web_demo.DemoConfig(cache_size=2))
    states = []
    for index in range(3):
        Image.fromarray(_pattern() + index).save(tmp_path / f"{index}.png")
        states.append(web_demo.on_photo(demo, str(tmp_path / f"{index}.png"), True, False)["state"])
    assert demo.cached(states[0]["key"]) is None and demo.cached(states[2]["key"]) is not None
    assert web_demo.on_edit(demo, states[0], HAPPY)["edited"].shape == (48, 64, 3)


def test_no_face_says_to_tick_whole_image_which_then_edits_the_whole_photo(demo):
    path = str(PHOTOS_DIR / "chelsea.png") if PHOTOS_DIR.is_dir() else pytest.skip(f"no {PHOTOS_DIR}")
    result = web_demo.on_photo(demo, path, False, False)
    assert result["state"] is None and result["edited"] is None
    assert result["status"].startswith("No face: no face found in 'chelsea.png' (MTCNN")
    assert result["status"].endswith('Tick "Whole image" to edit the whole photo as one face.')
    whole = web_demo.on_photo(demo, path, True, False)
    assert whole["status"].startswith("chelsea.png (451x300): the whole image is edited as one face")
    assert whole["edited"].shape == (300, 451, 3)


def test_bad_uploads_get_a_clear_answer_naming_the_file(demo, tmp_path):
    (tmp_path / "notes.png").write_text("not a photo")
    (tmp_path / "huge.png").write_bytes(_bomb_png(10001, 10000))
    answers = {name: web_demo.on_photo(demo, str(tmp_path / name), True, False) for name in ("notes.png", "huge.png")}
    assert answers["notes.png"]["status"] == ("Error: 'notes.png' is not a JPEG, PNG or WebP image "
                                              "(PIL could not identify it)")
    assert answers["huge.png"]["status"].startswith("Error: refused to decode photo 'huge.png': its header claims "
                                                    "10001x10000 = 100,010,000 pixels, over the limit of 100,000,000")
    assert str(tmp_path) not in answers["notes.png"]["status"] + answers["huge.png"]["status"]
    assert all(answer["state"] is None and answer["edited"] is None for answer in answers.values())
    assert web_demo.on_photo(demo, None, False, False)["status"].startswith("Upload a photo")
    assert web_demo.on_edit(demo, None, HAPPY)["status"] == "Upload a photo first." == web_demo.on_gif(
        demo, None, HAPPY)["status"]


def test_grayscale_cmyk_and_exif_rotated_photos_are_edited_upright_in_rgb(demo, tmp_path):
    Image.fromarray(_pattern()).convert("L").save(tmp_path / "gray.png")
    Image.fromarray(_pattern()).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways; shown rotated 90 degrees clockwise
    Image.fromarray(_pattern()).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    shapes = {}
    for name in ("gray.png", "cmyk.jpg", "rotated.jpg"):
        result = web_demo.on_photo(demo, str(tmp_path / name), True, False)
        assert result["status"].startswith(f"{name} ("), result["status"]
        shapes[name] = (result["edited"].shape, result["preview"].shape)
    assert shapes["gray.png"] == shapes["cmyk.jpg"] == ((48, 64, 3),) * 2
    assert shapes["rotated.jpg"] == ((64, 48, 3),) * 2


class _EstimatingModel(edit_model.KerasEditModel):
    """A model whose critic says every face shows AU i at intensity i / 20."""

    def estimate_aus(self, images):
        return np.tile(np.arange(17, dtype=np.float32) / 20, (len(images), 1))


def test_a_run_folders_critic_estimates_start_aus(tiny_run_dir, model):
    assert web_demo.DemoEditor(backends.load_edit_model(tiny_run_dir)).can_estimate
    assert not web_demo.DemoEditor(model).can_estimate


def test_a_saved_model_exported_with_the_critic_estimates_and_the_page_says_what_does(tiny_run_dir, tmp_path):
    with_critic = backends.load_edit_model(saved_model.export_from_workdir(tiny_run_dir, tmp_path))
    without = backends.load_edit_model(saved_model.export_from_workdir(tiny_run_dir, tmp_path, with_critic=False))
    assert web_demo.DemoEditor(with_critic).can_estimate and not web_demo.DemoEditor(without).can_estimate
    pytest.importorskip("gradio", reason=f"gradio is not installed: {web_demo._INSTALL}")
    hints = {}
    for name, model in (("with", with_critic), ("without", without)):
        app = web_demo.build_app(web_demo.DemoEditor(model))
        (checkbox,) = [block for block in app.blocks.values() if getattr(block, "elem_id", None) == "from-estimate"]
        hints[name] = checkbox.info
    assert hints["with"] is None
    assert "training run folder" in hints["without"] and "exported with the critic" in hints["without"]
    assert "--curve=track.csv" in hints["without"]


def test_the_page_starts_from_the_estimate_and_the_gif_interpolates_from_it(tmp_path):
    demo = web_demo.DemoEditor(_EstimatingModel(tiny_generator(), SIZE), web_demo.DemoConfig(gif_frames=5))
    Image.fromarray(_pattern()).save(tmp_path / "face.png")
    result = web_demo.on_photo(demo, str(tmp_path / "face.png"), True, True)
    loaded = demo.cached(result["state"]["key"])
    assert result["status"].endswith("start AUs estimated by the critic.")
    assert result["sliders"] == [round(index / 20, 2) for index in range(17)]
    assert np.allclose(result["state"]["start"], np.arange(17) / 20)
    neutral = web_demo.on_photo(demo, str(tmp_path / "face.png"), True, False)
    assert neutral["sliders"] == [0.0] * 17 and neutral["state"]["start"] == [0.0] * 17
    gif = web_demo.on_gif(demo, result["state"], HAPPY)
    assert gif["status"].endswith("Animation: 5 frames from the start AUs.")
    frames = []
    with Image.open(gif["gif"]) as animation:
        assert animation.n_frames == 5 and animation.size == (64, 48)
        for index in (0, 4):
            animation.seek(index)
            frames.append(np.asarray(animation.convert("RGB"), np.float32))
    ends = [demo.face_editor.edit(loaded.photo, loaded.crops, aus) for aus in (loaded.start_aus, HAPPY)]
    # The GIF's shared palette rounds colours, so each end frame is nearest to its edit, not equal to it.
    distances = [[np.abs(frame - end).mean() for end in ends] for frame in frames]
    assert distances[0][0] < distances[0][1] and distances[1][1] < distances[1][0], distances


def test_eight_users_at_once_get_their_own_edits(demo):
    path = _astronaut_path()
    results, errors = [None] * 8, []

    def user(index):
        try:
            state = web_demo.on_photo(demo, path, False, False)["state"]
            results[index] = web_demo.on_edit(demo, state, np.full(17, index / 7, np.float32))["edited"]
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=user, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors and all(result is not None for result in results)
    assert len({result.tobytes() for result in results}) == 8


# === The server ===


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _served(demo):
    pytest.importorskip("gradio", reason=f"gradio is not installed: {web_demo._INSTALL}")
    app = web_demo.build_app(demo)
    return app, web_demo.launch(app, demo.config)


def _multipart(name: str, content: bytes) -> tuple[bytes, str]:
    boundary = "demo-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_the_server_listens_on_loopback_and_refuses_large_uploads(model):
    demo = web_demo.DemoEditor(model, web_demo.DemoConfig(port=_free_port(), max_file_size=4096, max_queue=5))
    app, url = _served(demo)
    try:
        assert url == f"http://127.0.0.1:{demo.config.port}/" and not app.share
        assert (app.max_file_size, app._queue.max_size, app._queue.default_concurrency_limit) == (4096, 5, 2)
        codes = {}
        for size in (1000, 10_000):
            body, content_type = _multipart("photo.png", b"x" * size)
            request = urllib.request.Request(url + "gradio_api/upload", body, {"Content-Type": content_type})
            try:
                codes[size] = urllib.request.urlopen(request, timeout=30).status
            except urllib.error.HTTPError as error:
                codes[size] = error.code
        assert codes == {1000: 200, 10_000: 413}
        assert urllib.request.urlopen(url, timeout=30).status == 200  # still serving
    finally:
        app.close()


def test_each_event_runs_the_generator_once_through_the_server(tmp_path):
    gradio_client = pytest.importorskip("gradio_client", reason=f"gradio is not installed: {web_demo._INSTALL}")
    calls = []

    class CountingModel(edit_model.KerasEditModel):
        def _edit(self, images, aus):
            calls.append(len(images))
            return super()._edit(images, aus)

    demo = web_demo.DemoEditor(CountingModel(tiny_generator(), SIZE),
                               web_demo.DemoConfig(port=_free_port(), gif_frames=6))
    Image.fromarray(_pattern()).save(tmp_path / "face.png")
    app, url = _served(demo)
    try:
        client = gradio_client.Client(url, verbose=False)
        client.predict(gradio_client.handle_file(str(tmp_path / "face.png")), True, False, api_name="/photo_event")
        assert calls == [1]
        edited = client.predict(*[float(value) for value in HAPPY], api_name="/edit_event")
        assert calls == [1, 1] and edited[3].endswith(" ms.")
        assert np.array_equal(np.asarray(Image.open(edited[0])),
                              demo.edit(demo.load(tmp_path / "face.png", True), HAPPY).photo)
        gif, status = client.predict(*[float(value) for value in HAPPY], api_name="/gif_event")
        assert calls == [1, 1, 1, 6] and status.endswith("6 frames from the start AUs.")
        assert Image.open(gif).n_frames == 6
    finally:
        app.close()


def test_a_full_queue_is_refused_and_the_server_keeps_serving(tmp_path):
    gradio_client = pytest.importorskip("gradio_client", reason=f"gradio is not installed: {web_demo._INSTALL}")

    class SlowModel(edit_model.KerasEditModel):
        def _edit(self, images, aus):
            time.sleep(0.5)
            return super()._edit(images, aus)

    config = web_demo.DemoConfig(port=_free_port(), concurrency=1, max_queue=2)
    demo = web_demo.DemoEditor(SlowModel(tiny_generator(), SIZE), config)
    Image.fromarray(_pattern()).save(tmp_path / "face.png")
    app, url = _served(demo)
    outcomes = []

    def user():
        try:
            client = gradio_client.Client(url, verbose=False)
            client.predict(gradio_client.handle_file(str(tmp_path / "face.png")), True, False, api_name="/photo_event")
            outcomes.append("served")
        except Exception as error:  # noqa: BLE001 - the client raises its own error types
            outcomes.append(str(error))

    try:
        threads = [threading.Thread(target=user) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert "served" in outcomes and any("Queue is full" in outcome for outcome in outcomes), outcomes
        assert all(outcome == "served" or "Queue is full" in outcome for outcome in outcomes), outcomes
        user()
        assert outcomes[-1] == "served"
    finally:
        app.close()


# === The page in a real browser ===


@pytest.fixture(scope="module")
def page(model, detector, tmp_path_factory):
    """The demo served on a free loopback port, and headless Chromium on it (Selenium)."""
    driver = headless_chromium(CHROMIUM_FLAGS, tmp_path_factory.mktemp("chromium"), web_demo._INSTALL)
    config = web_demo.DemoConfig(port=_free_port(), examples=web_demo.example_photos(PHOTOS_DIR))
    demo = web_demo.DemoEditor(model, config, detector)
    app, url = _served(demo)
    driver.get(url)
    try:
        yield demo, driver
    finally:
        driver.quit()
        app.close()


def _wait(driver, condition, timeout=30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda _: condition())


def _upload(driver, path):
    from selenium.webdriver.common.by import By

    clear = driver.find_elements(By.CSS_SELECTOR, "#photo-upload button[aria-label='Clear']")
    if clear:
        clear[0].click()
    _wait(driver, lambda: driver.find_elements(By.CSS_SELECTOR, "#photo-upload input[type=file]"))
    driver.find_element(By.CSS_SELECTOR, "#photo-upload input[type=file]").send_keys(path)


def _status(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "status").text


def _shown(driver, element_id) -> tuple[str, np.ndarray] | None:
    """The (URL, pixels) of the image a gr.Image shows, or None."""
    from selenium.webdriver.common.by import By

    images = driver.find_elements(By.CSS_SELECTOR, f"#{element_id} img")
    if not images or not images[0].get_attribute("src"):
        return None
    source = images[0].get_attribute("src")
    with urllib.request.urlopen(source, timeout=30) as response:
        return source, np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"))


def _slider_values(driver) -> np.ndarray:
    from selenium.webdriver.common.by import By

    return np.array([float(driver.find_element(By.CSS_SELECTOR, f"#au-{name} input[type=number]")
                           .get_attribute("value"))
                     for name in action_units.AU_NAMES], np.float32)


def _hosts_requested(driver) -> set[str]:
    hosts = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if url.startswith(("http:", "https:", "ws:", "wss:")):
                hosts.add(urllib.parse.urlsplit(url).hostname)
    return hosts


@pytest.mark.slow
def test_page_edits_the_face_on_slider_release_and_preset_and_keeps_the_rest_bit_exact(page, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    demo, driver = page
    path = _astronaut_path()
    _upload(driver, path)
    _wait(driver, lambda: "1 face found" in _status(driver) and _shown(driver, "edited"), timeout=45)
    photo = image_files.read_photo(path)
    loaded = demo.load(path, False)
    outside = ~blending.face_region(loaded.crops[0].transform, *photo.shape[:2])
    first_url, first = _shown(driver, "edited")
    assert np.array_equal(first[outside], photo[outside]) and not np.array_equal(first, photo)

    slider = driver.find_element(By.CSS_SELECTOR, "#au-AU26 input[type=range]")
    ActionChains(driver).move_to_element(slider).click_and_hold().move_by_offset(30, 0).release().perform()
    _wait(driver, lambda: _shown(driver, "edited")[0] != first_url)
    moved_url, moved = _shown(driver, "edited")
    aus = _slider_values(driver)
    assert aus[action_units.au_index("AU26")] > 0 and np.count_nonzero(aus) == 1
    assert np.array_equal(moved, demo.edit(loaded, aus).photo)  # what the library computes, pixel for pixel
    assert np.array_equal(moved[outside], photo[outside]) and not np.array_equal(moved, first)

    driver.find_element(By.ID, "preset-happy").click()
    _wait(driver, lambda: _shown(driver, "edited")[0] != moved_url)
    _, happy = _shown(driver, "edited")
    np.testing.assert_allclose(_slider_values(driver), HAPPY, atol=1e-6)
    assert np.array_equal(happy, demo.edit(loaded, HAPPY).photo) and np.array_equal(happy[outside], photo[outside])
    assert _shown(driver, "attention")[1].shape == _shown(driver, "color")[1].shape == (256, 256, 3)
    assert _hosts_requested(driver) == {"127.0.0.1"}  # no fonts, analytics or scripts from outside

    time.sleep(1.0)  # the outputs' fade-in
    driver.save_screenshot(str(tmp_path / "demo.png"))
    assert Image.open(tmp_path / "demo.png").size[0] >= 1000
    if os.environ.get("DEMO_SCREENSHOT"):
        with Image.open(tmp_path / "demo.png") as shot:
            small = shot.convert("RGB").resize((shot.width * 3 // 4, shot.height * 3 // 4), Image.Resampling.LANCZOS)
            small.quantize(256, method=Image.Quantize.FASTOCTREE).save(os.environ["DEMO_SCREENSHOT"], optimize=True)


@pytest.mark.slow
def test_page_reports_bad_uploads_and_keeps_serving(page, tmp_path):
    _, driver = page
    (tmp_path / "not_a_photo.png").write_text("this is text, not an image")
    (tmp_path / "huge.png").write_bytes(_bomb_png(10001, 10000))
    _upload(driver, str(tmp_path / "not_a_photo.png"))
    _wait(driver, lambda: _status(driver).startswith("Error:"))
    assert _status(driver) == "Error: 'not_a_photo.png' is not a JPEG, PNG or WebP image (PIL could not identify it)"
    assert _shown(driver, "edited") is None
    _upload(driver, str(tmp_path / "huge.png"))
    _wait(driver, lambda: "huge.png" in _status(driver))
    assert "over the limit of 100,000,000 pixels" in _status(driver)
    _upload(driver, _astronaut_path())
    _wait(driver, lambda: "1 face found" in _status(driver) and _shown(driver, "edited"), timeout=45)


@pytest.mark.slow
def test_page_offers_examples_the_whole_image_and_a_gif(page):
    from selenium.webdriver.common.by import By

    _, driver = page
    _astronaut_path()  # the examples are the shared photos
    example = "//button[contains(., 'chelsea.png')]"  # a cat: no human face
    _wait(driver, lambda: driver.find_elements(By.XPATH, example))
    driver.find_element(By.XPATH, example).click()
    _wait(driver, lambda: _status(driver).startswith("No face: no face found in 'chelsea.png'"), timeout=45)
    assert _status(driver).endswith('Tick "Whole image" to edit the whole photo as one face.')
    driver.find_element(By.CSS_SELECTOR, "#whole-image input").click()
    _wait(driver, lambda: "the whole image is edited as one face" in _status(driver) and _shown(driver, "edited"))
    whole_url, whole = _shown(driver, "edited")
    assert whole.shape == (300, 451, 3)
    driver.find_element(By.ID, "preset-surprise").click()
    _wait(driver, lambda: _shown(driver, "edited")[0] != whole_url)
    driver.find_element(By.ID, "gif-button").click()
    _wait(driver, lambda: "Animation: 24 frames" in _status(driver))
    link = driver.find_element(By.CSS_SELECTOR, "#gif a").get_attribute("href")
    with urllib.request.urlopen(link, timeout=30) as response, Image.open(io.BytesIO(response.read())) as gif:
        # PIL stores a run of identical frames as one longer frame; the neutral start and surprise differ.
        assert (gif.format, gif.size) == ("GIF", (451, 300)) and 12 < gif.n_frames <= 24
    driver.find_element(By.CSS_SELECTOR, "#whole-image input").click()  # as the other tests expect it
    _wait(driver, lambda: _status(driver).startswith("No face"))


# === scripts/demo.py ===


def _serve_script(args, cwd, timeout=90):
    """Runs scripts/demo.py until it prints its URL; returns (process, url)."""
    pytest.importorskip("gradio", reason=f"gradio is not installed: {web_demo._INSTALL}")
    process = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "scripts" / "demo.py"), *args], cwd=cwd,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        if line.startswith("Serving ") or (not line and process.poll() is not None):
            break
    if not lines[-1].startswith("Serving "):
        process.kill()
        pytest.fail("the demo did not start:\n" + "".join(lines))
    return process, lines[-1].split(" at ")[1].split(" ")[0]


def _stop(process):
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.mark.slow
def test_demo_script_wants_exactly_one_model():
    result = subprocess.run([sys.executable, "scripts/demo.py", "--saved_model=a", "--tflite=b.tflite"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "error: give exactly one model: --workdir=RUN, --saved_model=DIR or --tflite=FILE" in result.stderr


@pytest.mark.slow
def test_demo_script_serves_a_run_folder_on_loopback(tiny_run_dir):
    port = _free_port()
    process, url = _serve_script([f"--workdir={tiny_run_dir}", f"--port={port}"], PROJECT_ROOT)
    try:
        assert url == f"http://127.0.0.1:{port}/"
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200 and b"gradio" in response.read().lower()
    finally:
        _stop(process)


@pytest.mark.slow
def test_quickstart_serves_a_trained_quickstart_run_with_synthetic_faces(tmp_path, tiny_run_dir):
    shutil.copytree(PROJECT_ROOT / "configs", tmp_path / "configs")
    shutil.copytree(tiny_run_dir, tmp_path / "runs" / "quickstart")  # trained already: no training
    process, url = _serve_script(["--quickstart", f"--port={_free_port()}"], tmp_path)
    try:
        faces = sorted((tmp_path / "runs" / "quickstart" / "demo_examples").glob("face_*.png"))
        assert [face.name for face in faces] == [f"face_{index}.png" for index in range(4)]
        assert image_files.read_photo(faces[0]).shape == (128, 128, 3)
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200
    finally:
        _stop(process)
