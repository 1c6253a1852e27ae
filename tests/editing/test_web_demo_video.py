"""Tests for tf_ganimation/editing/web_demo_video.py: the video section's logic (no browser) and its layout."""

import os

import numpy as np
import pytest
from video_clips import face_clip, write_clip

from tf_ganimation.editing import video_io, web_demo, web_demo_video
from tf_ganimation.export import backends


@pytest.fixture(scope="module")
def videos(tiny_run_dir, detector):
    return web_demo_video.VideoDemo(backends.load_edit_model(tiny_run_dir),
                                    web_demo_video.VideoDemoConfig(max_seconds=1.0, keep=1), detector)


def test_a_clip_is_edited_and_only_the_last_ones_are_kept(tmp_path, videos, astronaut):
    clip = write_clip(tmp_path / "clip.mp4", face_clip(astronaut, 4, blank_at=()), fps=8)
    first = videos.edit(str(clip), "happy", "")
    assert first["status"].startswith("Edited 4 frames (4 with a face)")
    assert video_io.probe(first["video"]).num_frames == 4
    second = videos.edit(str(clip), "sad", "0s:neutral,0.3s:happy")
    assert second["video"] != first["video"] and video_io.probe(second["video"]).num_frames == 4
    assert not os.path.exists(first["video"])  # keep=1


def test_bad_uploads_become_a_status_line(tmp_path, videos):
    assert videos.edit(None, "happy", "")["status"].startswith("Upload a video")
    (tmp_path / "notes.mp4").write_text("not a video")
    result = videos.edit(str(tmp_path / "notes.mp4"), "happy", "")
    assert result["video"] is None and "not a video" in result["status"]
    long = write_clip(tmp_path / "long.mp4", [np.zeros([32, 32, 3], np.uint8)] * 12, fps=8)
    assert "at most 1 s" in videos.edit(str(long), "happy", "")["status"]
    blank = write_clip(tmp_path / "blank.mp4", [np.full([48, 64, 3], 90, np.uint8)] * 3, fps=8)
    assert "no face in any of the 3 frames" in videos.edit(str(blank), "happy", "")["status"]
    assert "time 'x' is invalid" in videos.edit(str(blank), "happy", "x:happy")["status"]


def test_the_page_has_the_video_section(tiny_run_dir, videos):
    pytest.importorskip("gradio", reason="the web demo's layout needs gradio (requirements-demo.txt)")
    demo = web_demo.DemoEditor(backends.load_edit_model(tiny_run_dir))
    app = web_demo.build_app(demo, videos=videos)
    ids = {getattr(block, "elem_id", None) for block in app.blocks.values()}
    assert {"video-upload", "video-edited", "video-preset", "video-curve", "video-button"} <= ids


@pytest.mark.parametrize("options, message", [({"max_seconds": 0}, "max_seconds=0"), ({"keep": 0}, "keep=0")])
def test_bad_config(options, message):
    with pytest.raises(ValueError, match=message):
        web_demo_video.VideoDemoConfig(**options)


@pytest.mark.slow
def test_the_video_section_in_a_browser(tmp_path, tiny_run_dir, videos, astronaut):
    """Upload a clip in headless Chromium, type a curve, press the button, download the edited MP4."""
    import urllib.request

    from test_web_demo import CHROMIUM_FLAGS

    from conftest import free_port, headless_chromium

    driver = headless_chromium(CHROMIUM_FLAGS, tmp_path / "chromium", web_demo._INSTALL)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    clip = write_clip(tmp_path / "clip.mp4", face_clip(astronaut, 4, blank_at=()), fps=8)
    config = web_demo.DemoConfig(port=free_port())
    app = web_demo.build_app(web_demo.DemoEditor(backends.load_edit_model(tiny_run_dir), config), videos=videos)
    url = web_demo.launch(app, config)
    wait = WebDriverWait(driver, 120, poll_frequency=0.2)
    try:
        driver.get(url)
        header = wait.until(lambda _: driver.find_elements(By.CSS_SELECTOR, "#video-section button"))
        header[0].click()  # open the accordion
        wait.until(lambda _: driver.find_elements(By.CSS_SELECTOR, "#video-upload input[type=file]"))
        driver.find_element(By.CSS_SELECTOR, "#video-upload input[type=file]").send_keys(str(clip))
        wait.until(lambda _: driver.find_elements(By.CSS_SELECTOR, "#video-upload video"))
        driver.find_element(By.CSS_SELECTOR, "#video-curve textarea").send_keys("0s:neutral,0.3s:surprise")
        driver.find_element(By.ID, "video-button").click()
        wait.until(lambda _: "Edited 4 frames" in driver.find_element(By.ID, "video-status").text)
        source = wait.until(lambda _: driver.find_element(By.CSS_SELECTOR, "#video-edited video").get_attribute("src"))
        with urllib.request.urlopen(source, timeout=30) as response:
            (tmp_path / "downloaded.mp4").write_bytes(response.read())
        assert video_io.probe(tmp_path / "downloaded.mp4").num_frames == 4
    finally:
        driver.quit()
        app.close()
