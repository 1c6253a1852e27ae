"""The browser editor's latency, slider release to new image, in headless Chromium on wasm and WebGPU.

    python scripts/benchmarks/web_page_latency.py --tflite=runs/quickstart_fp16.tflite
    python scripts/benchmarks/web_page_latency.py --tflite=runs/paper_fp16.tflite --runs=5 --accelerators=wasm,webgpu
    python scripts/benchmarks/web_page_latency.py --tflite=runs/quickstart_fp16.tflite --runs=1 \
        --screenshot=docs/web_page.png --square=170,50,120 --preset=happy

Builds the page (scripts/export_web.py) into a temporary folder, serves it on 127.0.0.1, loads --photo,
places the face square at --square, then for each accelerator times --runs slider releases at random
AU values after --warmup untimed ones: from the slider's `change` event to the edited photo and the
attention map drawn (the page's whole edit: crop, LiteRT.js, compose). Prints a markdown table of the
median and p95, with the generator's own share. WebGPU runs on whatever adapter Chromium finds
(SwiftShader, a CPU, on a machine without a GPU). A benchmark, not a test.
"""

import pathlib
import shutil
import tempfile

import numpy as np
from absl import flags, logging

from tf_ganimation import cli
from tf_ganimation.editing import static_page

_TFLITE = flags.DEFINE_string("tflite", None, "The generator's .tflite (batch 1).")
_PHOTO = flags.DEFINE_string(
    "photo", str(pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "photos" / "astronaut.png"),
    "The photo to edit.")
_SQUARE = flags.DEFINE_string("square", "170,50,120", "The face square: x,y,side in the photo's pixels.")
_ACCELERATORS = flags.DEFINE_list("accelerators", ["wasm", "webgpu"], "The page's accelerators to time.")
_RUNS = flags.DEFINE_integer("runs", 20, "Timed slider releases per accelerator.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed slider releases first (WebGPU compiles its shaders then).")
_SCREENSHOT = flags.DEFINE_string("screenshot", None, "Save a screenshot of the page (last accelerator) here.")
_PRESET = flags.DEFINE_string("preset", None, "Click this preset before the screenshot.")
flags.mark_flag_as_required("tflite")

CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--enable-unsafe-webgpu",
                  "--enable-features=Vulkan", "--use-angle=swiftshader", "--use-webgpu-adapter=swiftshader",
                  "--disable-background-networking", "--disable-component-update", "--window-size=1400,1000")
_SLIDER_RELEASE = """
const [index, value, done] = arguments;
const input = document.querySelectorAll('#sliders input')[index];
const start = performance.now();
input.value = String(value);
input.dispatchEvent(new Event('input'));
input.dispatchEvent(new Event('change'));
editor.state.busy.then(() => done([performance.now() - start, editor.state.lastRunMs]));
"""


def _browser():
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which("chromedriver")))


def _wait(driver, script, timeout=600):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda _: driver.execute_script(script))


def time_page(driver, url, accelerator, rng) -> dict:
    driver.get(f"{url}?accelerator={accelerator}")
    _wait(driver, "return window.editor && document.getElementById('runtime').textContent.startsWith('LiteRT.js')")
    runtime = driver.find_element("id", "runtime").text
    driver.find_element("id", "photo-input").send_keys(str(pathlib.Path(_PHOTO.value).resolve()))
    _wait(driver, "return editor.state.edits >= 1")
    x, y, side = (int(value) for value in _SQUARE.value.split(","))
    driver.execute_script("return editor.setSquare(...arguments)", x, y, side)
    _wait(driver, "return editor.state.edits >= 2")
    driver.set_script_timeout(600)
    edits, runs = [], []
    for number in range(_WARMUP.value + _RUNS.value):
        edit_ms, run_ms = driver.execute_async_script(_SLIDER_RELEASE, int(rng.integers(17)), float(rng.uniform()))
        if number >= _WARMUP.value:
            edits.append(edit_ms)
            runs.append(run_ms)
    return {"runtime": runtime, "edit": np.array(edits), "generator": np.array(runs)}


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="web_page_latency_") as folder:
        page = static_page.build_page(_TFLITE.value, pathlib.Path(folder) / "web")
        server, url = static_page.serve(page, port=0, in_thread=True)
        driver = _browser()
        try:
            rows = [(accelerator, time_page(driver, url, accelerator, rng)) for accelerator in _ACCELERATORS.value]
            if _SCREENSHOT.value:
                if _PRESET.value:
                    driver.execute_script(f"document.getElementById('preset-{_PRESET.value}').click()")
                    _wait(driver, f"return editor.state.edits >= {_WARMUP.value + _RUNS.value + 3}")
                driver.save_screenshot(_SCREENSHOT.value)
                print(f"wrote {_SCREENSHOT.value}")
        finally:
            driver.quit()
            server.shutdown()
    print(f"{_TFLITE.value}: slider release to new image, {_RUNS.value} runs after {_WARMUP.value} warm-up")
    print("| accelerator | page runtime | edit median (ms) | edit p95 (ms) | generator median (ms) |")
    print("|---|---|---|---|---|")
    for accelerator, row in rows:
        print(f"| {accelerator} | {row['runtime']} | {np.median(row['edit']):.0f} | "
              f"{np.percentile(row['edit'], 95):.0f} | {np.median(row['generator']):.0f} |")


if __name__ == "__main__":
    cli.run(main)
