"""The editor as a static page: the converted generator runs in the user's browser with LiteRT.js.

    page = static_page.build_page("quickstart_fp16.tflite", "web/")   # index.html, model.tflite, vendor/, ...
    server, url = static_page.serve(page, port=8000)                  # http://127.0.0.1:8000/
    server.serve_forever()

`build_page` copies the page (web_page/: index.html, editor.js, style.css), the model, a config.json
(image size, the 17 AUs with their FACS names, the presets, the GPU precision) and LiteRT.js
(`@litertjs/core`, pinned in web_page/package.json; `npm ci` in web_page/ installs it) into one folder.
Everything the page loads comes from that folder: no CDN, no request off the machine. The page runs
the generator on WebGPU where the browser offers an adapter, on wasm (the CPU) otherwise, and says which.

The face is a square the user places on the photo, not a detector: the detectors published on npm
either fetch their weights from a CDN at run time (MediaPipe's face detector) or bring a second
machine-learning runtime with them (face-api.js, on TensorFlow.js); a square keeps the page to one
runtime and to its own folder. Notes: the Python editor (editor.py) aligns an MTCNN crop instead.

Any static file server serves the folder; `serve` is Python's, with the MIME types the page needs
(application/wasm for LiteRT.js's WebAssembly).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import pathlib
import shutil
import tempfile
import threading
import typing

from tf_ganimation.core import action_units
from tf_ganimation.editing import web_demo

ASSETS_DIR = pathlib.Path(__file__).resolve().parent / "web_page"
PAGE_FILES = ("index.html", "editor.js", "style.css")
MODEL_FILE = "model.tflite"
GPU_PRECISIONS = ("fp32", "fp16")
_VENDORED = {"core": ("dist", "wasm"), "wasm-utils": ("dist",)}  # node_modules/@litertjs/<package>/<folder>
_MIME_TYPES = {".wasm": "application/wasm", ".js": "text/javascript", ".mjs": "text/javascript",
               ".json": "application/json", ".tflite": "application/octet-stream"}


def page_config(image_size: int, gpu_precision: str = "fp32") -> dict:
    """The page's config.json: the model's size, the AU sliders, the presets and the GPU precision."""
    return {
        "model_file": MODEL_FILE,
        "image_size": image_size,
        "action_units": [{"name": name, "description": action_units.AU_DESCRIPTIONS[name]}
                         for name in action_units.AU_NAMES],
        "presets": {name: [round(float(value), 4) for value in action_units.preset(name)]
                    for name in web_demo.PRESET_BUTTONS},
        "slider_step": web_demo.SLIDER_STEP,
        "gpu_precision": gpu_precision,
    }


def model_image_size(tflite_path: os.PathLike | str) -> int:
    """The side S of a converted generator with batch 1; raises ValueError for any other model."""
    from tf_ganimation.export import litert

    model = litert.TFLiteEditModel(tflite_path)
    if model.batch_size != 1:
        raise ValueError(f"{tflite_path} has a fixed batch of {model.batch_size}; the page runs one face at a time: "
                         "convert with --batch_size=1 (scripts/convert_tflite.py)")
    return model.image_size


def build_page(tflite_path: os.PathLike | str, out_dir: os.PathLike | str, gpu_precision: str = "fp32",
               node_modules: os.PathLike | str | None = None) -> pathlib.Path:
    """Writes the page for `tflite_path` into `out_dir` (replaced whole, atomically) and returns it.

    Args:
        tflite_path: a generator converted by scripts/convert_tflite.py, batch 1.
        out_dir: the folder to write; an existing one is replaced only if it holds a page built here.
        gpu_precision: "fp32" or "fp16", LiteRT.js's WebGPU arithmetic (BENCHMARKS.md: float16 parity).
        node_modules: where `npm ci` installed @litertjs (default web_page/node_modules).

    Raises:
        FileNotFoundError: no model, or LiteRT.js is not installed.
        ValueError: the model is not a batch-1 generator, out_dir is a folder of something else, or a bad
            gpu_precision.
    """
    if gpu_precision not in GPU_PRECISIONS:
        raise ValueError(f"gpu_precision={gpu_precision!r} is invalid: expected one of {GPU_PRECISIONS}")
    tflite_path, out_dir = pathlib.Path(tflite_path), pathlib.Path(out_dir)
    if not tflite_path.is_file():
        raise FileNotFoundError(f"{tflite_path} not found: expected a .tflite generator (scripts/convert_tflite.py)")
    litertjs = pathlib.Path(node_modules or ASSETS_DIR / "node_modules") / "@litertjs"
    missing = [name for name in _VENDORED if not (litertjs / name / "package.json").is_file()]
    if missing:
        raise FileNotFoundError(f"LiteRT.js not found in {litertjs.parent}: run `npm ci` in {ASSETS_DIR} "
                                "(Node 20; it installs @litertjs/core as pinned in package.json)")
    if out_dir.exists() and not (out_dir / "config.json").is_file() and any(out_dir.iterdir()):
        raise ValueError(f"{out_dir} exists and is not a page built here: choose a new or empty folder")
    image_size = model_image_size(tflite_path)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for name in PAGE_FILES:
            shutil.copy2(ASSETS_DIR / name, staging / name)
        shutil.copy2(tflite_path, staging / MODEL_FILE)
        (staging / "config.json").write_text(json.dumps(page_config(image_size, gpu_precision), indent=2))
        for package, folders in _VENDORED.items():
            for folder in folders:
                shutil.copytree(litertjs / package / folder, staging / "vendor" / "litertjs" / package / folder)
            shutil.copy2(litertjs / package / "package.json",
                         staging / "vendor" / "litertjs" / package / "package.json")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map: typing.ClassVar[dict] = {**http.server.SimpleHTTPRequestHandler.extensions_map, **_MIME_TYPES}

    def end_headers(self):
        # Cross-origin isolation: SharedArrayBuffer, so LiteRT.js's wasm runs on several threads.
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, format, *args):  # quiet: the page fetches dozens of files
        pass


def serve(page_dir: os.PathLike | str, host: str = "127.0.0.1", port: int = 8000,
          in_thread: bool = False) -> tuple[http.server.ThreadingHTTPServer, str]:
    """An HTTP server for a built page and its URL; with in_thread, already serving in a daemon thread."""
    page_dir = pathlib.Path(page_dir)
    if not (page_dir / "index.html").is_file() or not (page_dir / "config.json").is_file():
        raise FileNotFoundError(f"{page_dir} has no built page (index.html, config.json): run scripts/export_web.py")
    server = http.server.ThreadingHTTPServer((host, port), functools.partial(_Handler, directory=str(page_dir)))
    if in_thread:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    shown = f"[{host}]" if ":" in host else host
    return server, f"http://{shown}:{server.server_address[1]}/"
