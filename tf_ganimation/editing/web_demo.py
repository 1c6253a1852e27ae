"""The editor in a browser: upload a photo, move 17 AU sliders, watch the face change (scripts/demo.py).

    model = load_edit_model("runs/celeba")
    demo = DemoEditor(model, DemoConfig(examples=example_photos(PHOTOS_DIR)))
    app = build_app(demo)                  # a gradio.Blocks; gradio is imported here and nowhere else
    url = launch(app, demo.config)         # http://127.0.0.1:7860/, never shared unless config.share
    app.block_thread()                     # serves until Ctrl+C

The page runs the command-line editor's steps (editing.editor.Editor: MTCNN detection, the aligned crop,
the attention-weighted paste-back) on the largest face or the whole photo, read by image_files.read_photo.
`DemoEditor.load` caches the faces under a hash of the pixels, so a slider release only re-runs the
generator and the paste-back (BENCHMARKS.md). Everything but `build_app` and `launch` runs without gradio.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import operator
import os
import pathlib
import tempfile
import threading
import time

import numpy as np
from PIL import Image, ImageDraw

from tf_ganimation.core import action_units, grids, image_files, pixels
from tf_ganimation.editing import outputs, web_demo_video
from tf_ganimation.editing.editor import CANNOT_ESTIMATE_HELP, Editor, EditorConfig, FaceCrop, NoFaceError
from tf_ganimation.faces import detection
from tf_ganimation.model.edit_model import EditModel

# The preset buttons, in the page's order.
PRESET_BUTTONS = ("happy", "sad", "surprise", "fear", "anger", "disgust", "contempt", "neutral")
SLIDER_STEP = 0.05
# The attention and colour maps are enlarged (nearest neighbour) to at least this many pixels a side.
MAP_MIN_SIDE = 256
_INSTALL = "pip install --no-deps -r requirements-demo.txt (see its header)"


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """The page and its server.

    Attributes:
        host: the address to listen on; 127.0.0.1 keeps the page on this machine.
        port: the TCP port, in [1, 65535].
        share: ask gradio for a public link (it tunnels through gradio's servers); off unless asked.
        examples: photos offered as one-click examples.
        whole_image: the "Whole image" box's initial state.
        max_file_size: the largest upload gradio accepts, in bytes (bigger requests are refused).
        max_pixels: photos whose header claims more pixels are refused before decoding.
        concurrency: requests the server runs at once; the rest wait in the queue.
        max_queue: requests that may wait; further ones are told the queue is full.
        cache_size: photos whose faces are kept (least recently used dropped first).
        display_max_side: the edited photo is shown downscaled (Lanczos) beyond this longer side.
        gif_frames: frames in the animation from the start AUs to the sliders', in [2, 120].
        gif_fps: the animation's frames per second, in (0, 50].
    """

    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    examples: tuple[str, ...] = ()
    whole_image: bool = False
    max_file_size: int = 64 * 1024 * 1024
    max_pixels: int = image_files.MAX_PIXELS
    concurrency: int = 2
    max_queue: int = 16
    cache_size: int = 8
    display_max_side: int = 2048
    gif_frames: int = 24
    gif_fps: float = 12.0

    def __post_init__(self):
        positive = ("max_file_size", "max_pixels", "concurrency", "max_queue", "cache_size", "display_max_side")
        checks = [("port", isinstance(self.port, int) and 1 <= self.port <= 65535, "an integer in [1, 65535]"),
                  ("host", isinstance(self.host, str) and bool(self.host), "an address such as 127.0.0.1"),
                  ("gif_frames", isinstance(self.gif_frames, int) and 2 <= self.gif_frames <= 120,
                   "an integer in [2, 120]"),
                  ("gif_fps", isinstance(self.gif_fps, (int, float)) and 0 < self.gif_fps <= 50, "a number in (0, 50]")]
        checks += [(name, isinstance(getattr(self, name), int) and getattr(self, name) > 0, "an integer > 0")
                   for name in positive]
        for name, valid, expected in checks:
            if not valid:
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid: expected {expected}")


@dataclasses.dataclass(frozen=True)
class LoadedPhoto:
    """A photo and the face the page edits in it.

    Attributes:
        key: the cache key: a hash of the pixels, and whether the whole image is the face.
        name: the file's name, for messages.
        photo: uint8 [H, W, 3], as read_photo returns it (EXIF orientation applied).
        crops: one FaceCrop: the largest face, or the whole photo.
        faces_found: faces the detector found (0 with the whole image).
        start_aus: float32 [17] in [0, 1], the face's estimated AUs, or zeros where the model has no critic.
        start_source: where start_aus came from.
    """

    key: str
    name: str
    photo: np.ndarray
    crops: list[FaceCrop]
    faces_found: int
    start_aus: np.ndarray
    start_source: str

    def message(self) -> str:
        """What the page says about the photo once it is loaded."""
        height, width = self.photo.shape[:2]
        found = ("the whole image is edited as one face" if self.crops[0].face is None else "1 face found"
                 if self.faces_found == 1 else f"{self.faces_found} faces found, the largest is edited")
        return f"{self.name} ({width}x{height}): {found}; start AUs {self.start_source}."


@dataclasses.dataclass(frozen=True)
class EditResult:
    """One edit: uint8 [H', W', 3] photo (downscaled beyond display_max_side), and the face's attention
    (white = kept) and colour maps, uint8 [M, M, 3], M >= MAP_MIN_SIDE; seconds it took."""

    photo: np.ndarray
    attention: np.ndarray
    color: np.ndarray
    seconds: float


def photo_key(photo: np.ndarray, whole_image: bool) -> str:
    """The cache key of a photo: sha256 of its shape and pixels, and the whole-image choice."""
    digest = hashlib.sha256(repr(photo.shape).encode() + photo.tobytes()).hexdigest()[:32]
    return f"{digest}-{'whole' if whole_image else 'face'}"


def slider_label(name: str) -> str:
    """`AU12 lip corner puller`: an AU slider's label (FACS name and description)."""
    return f"{name} {action_units.AU_DESCRIPTIONS[name]}"


def example_photos(folder: str | os.PathLike | None) -> tuple[str, ...]:
    """The photos (image_files.PHOTO_EXTENSIONS) in a folder, sorted; () when it is None or absent."""
    if not folder or not os.path.isdir(folder):
        return ()
    return tuple(str(path) for path in sorted(pathlib.Path(folder).iterdir())
                 if path.suffix.lower() in image_files.PHOTO_EXTENSIONS and path.is_file())


class DemoEditor:
    """The page's logic: photos in, edits out, detection cached per photo. Thread-safe; no gradio.

    Args:
        model: the EditModel (export.backends.load_edit_model).
        config: DemoConfig.
        detector: a FaceDetector to share (built on the first photo when None).
    """

    def __init__(self, model: EditModel, config: DemoConfig = DemoConfig(),
                 detector: detection.FaceDetector | None = None):
        self.model, self.config = model, config
        self.face_editor = Editor(model, EditorConfig(faces="all"), detector)
        self.whole_editor = Editor(model, EditorConfig(whole_image=True))
        size = model.image_size
        self.can_estimate = model.estimate_aus(np.zeros([1, size, size, 3], np.float32)) is not None
        self._cache: collections.OrderedDict[str, LoadedPhoto] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.detections = 0  # faces searched for, not found in the cache (tests count them)
        self._gif_folder = tempfile.TemporaryDirectory(prefix="tf_ganimation_demo_")  # removed with the editor
        self._gif_dir = pathlib.Path(self._gif_folder.name)
        self._gifs: collections.deque[pathlib.Path] = collections.deque()

    def load(self, path: str | os.PathLike, whole_image: bool) -> LoadedPhoto:
        """Reads a photo and finds the face to edit, or takes the faces from the cache.

        Raises: image_files.PhotoError (not a photo, corrupt, over config.max_pixels; named by the file's
        name, not the upload path), NoFaceError (no face and not whole_image), FileNotFoundError.
        """
        path = os.fspath(path)
        name = os.path.basename(path)
        try:
            photo = image_files.read_photo(path, max_pixels=self.config.max_pixels)
        except image_files.PhotoError as error:
            raise image_files.PhotoError(str(error).replace(repr(path), repr(name))) from None
        key = photo_key(photo, whole_image)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return dataclasses.replace(self._cache[key], name=name)
        loaded = self._find_face(key, name, photo, whole_image)
        with self._lock:
            self._cache[key] = loaded
            while len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)
        return loaded

    def _find_face(self, key: str, name: str, photo: np.ndarray, whole_image: bool) -> LoadedPhoto:
        editor = self.whole_editor if whole_image else self.face_editor
        try:
            crops = editor.find_faces(photo, name)
        except NoFaceError:
            raise NoFaceError(name, self.face_editor.config.detector) from None
        finally:
            self.detections += not whole_image
        start, source = editor.start_aus(crops[:1])
        return LoadedPhoto(key, name, photo, crops[:1], 0 if whole_image else len(crops), start[0], source)

    def cached(self, key: str) -> LoadedPhoto | None:
        """The loaded photo of a key, while it is in the cache."""
        with self._lock:
            return self._cache.get(key)

    def edit(self, loaded: LoadedPhoto, aus) -> EditResult:
        """The photo with its face at `aus` (float [17] in [0, 1]): one generator call and one paste-back."""
        started = time.perf_counter()
        aus = np.clip(np.asarray(aus, np.float32), 0.0, 1.0)
        result = self.face_editor.edit_crops(loaded.crops, aus[None])
        photo = self.face_editor.paste(loaded.photo, loaded.crops, result["color"], result["attention"])
        factor = grids.enlargement(self.model.image_size, MAP_MIN_SIDE)
        attention = np.repeat(pixels.unit_to_uint8(result["attention"][0]), 3, axis=-1)
        color = pixels.unit_to_uint8(result["color"][0])
        return EditResult(self._for_display(photo), grids.enlarge(attention, factor), grids.enlarge(color, factor),
                          time.perf_counter() - started)

    def animate(self, loaded: LoadedPhoto, start_aus, aus) -> pathlib.Path:
        """A GIF from `start_aus` to `aus` (float [17] in [0, 1]), config.gif_frames frames (Editor.animate),
        512 px at most. The newest 32 GIFs are kept on disk (gradio serves copies of them)."""
        keyframes = np.clip(np.asarray([[start_aus, aus]], np.float32), 0.0, 1.0)
        frames = self.face_editor.animate(loaded.photo, loaded.crops, keyframes, self.config.gif_frames)
        path = self._gif_dir / f"{pathlib.Path(loaded.name).stem}_{time.time_ns()}.gif"
        outputs.write_animation(frames, str(path), self.config.gif_fps, max_side=512)
        with self._lock:
            self._gifs.append(path)
            if len(self._gifs) > 32:
                self._gifs.popleft().unlink(missing_ok=True)
        return path

    def preview(self, loaded: LoadedPhoto) -> np.ndarray:
        """The photo as read, with the edited face's crop square outlined (none for the whole image)."""
        image = Image.fromarray(loaded.photo)
        crop = loaded.crops[0]
        if crop.face is not None:
            size = crop.transform.size
            corners = crop.transform.to_photo(np.array([[0, 0], [size, 0], [size, size], [0, size], [0, 0]], float))
            width = max(2, round(max(image.size) / 300))
            ImageDraw.Draw(image).line([tuple(point) for point in corners], fill=(255, 64, 64), width=width)
        return self._for_display(np.asarray(image))

    def error_message(self, error: Exception) -> str:
        """What the page says when a photo cannot be used."""
        if isinstance(error, NoFaceError):
            reason = detection.NoFaceError(error.path, self.face_editor.config.detector)
            return f'No face: {reason}. Tick "Whole image" to edit the whole photo as one face.'
        if isinstance(error, FileNotFoundError):
            return "Error: the uploaded file is gone; upload it again."
        return f"Error: {error}"

    def _for_display(self, photo: np.ndarray) -> np.ndarray:
        height, width = photo.shape[:2]
        longest = max(height, width)
        if longest <= self.config.display_max_side:
            return photo
        ratio = self.config.display_max_side / longest
        size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
        return np.asarray(Image.fromarray(photo).resize(size, Image.Resampling.LANCZOS))


# === The page's events, as plain functions (build_app wires them to gradio) ===


def on_photo(demo: DemoEditor, path: str | None, whole_image: bool, from_estimate: bool) -> dict:
    """A photo uploaded (or picked, or "Whole image" / "start from the estimate" toggled).

    Returns:
        {"state": what later events need (None when nothing is loaded), "status": text, "preview",
         "edited", "attention", "color": images or None, "sliders": 17 floats, or None to keep them}.
    """
    empty = {"state": None, "preview": None, "edited": None, "attention": None, "color": None, "sliders": None}
    if not path:
        return {**empty, "status": "Upload a photo (JPEG, PNG or WebP) or pick an example."}
    try:
        loaded = demo.load(path, bool(whole_image))
    except (ValueError, FileNotFoundError) as error:
        return {**empty, "status": demo.error_message(error)}
    start = loaded.start_aus if from_estimate else np.zeros([action_units.NUM_AUS], np.float32)
    result = demo.edit(loaded, start)
    state = {"key": loaded.key, "path": str(path), "whole_image": bool(whole_image), "message": loaded.message(),
             "start": [float(value) for value in start]}
    return {"state": state, "status": loaded.message(), "preview": demo.preview(loaded), "edited": result.photo,
            "attention": result.attention, "color": result.color, "sliders": [round(float(v), 2) for v in start]}


def _loaded(demo: DemoEditor, state: dict | None) -> tuple[LoadedPhoto | None, str]:
    """The photo of a page's state (from the cache, or read again when it was dropped), or why there is none."""
    if not state:
        return None, "Upload a photo first."
    try:
        return demo.cached(state["key"]) or demo.load(state["path"], state["whole_image"]), ""
    except (ValueError, FileNotFoundError) as error:
        return None, demo.error_message(error)


def on_edit(demo: DemoEditor, state: dict | None, aus) -> dict:
    """A slider released or a preset clicked: {"edited", "attention", "color", "status"}."""
    loaded, problem = _loaded(demo, state)
    if loaded is None:
        return {"edited": None, "attention": None, "color": None, "status": problem}
    result = demo.edit(loaded, aus)
    return {"edited": result.photo, "attention": result.attention, "color": result.color,
            "status": f"{state['message']} Edited in {result.seconds * 1000:.0f} ms."}


def on_gif(demo: DemoEditor, state: dict | None, aus) -> dict:
    """The "Animation" button: {"gif": a GIF file's path or None, "status"}."""
    loaded, problem = _loaded(demo, state)
    if loaded is None:
        return {"gif": None, "status": problem}
    return {"gif": str(demo.animate(loaded, state["start"], aus)),
            "status": f"{state['message']} Animation: {demo.config.gif_frames} frames from the start AUs."}


# === gradio ===


def build_app(demo: DemoEditor, title: str = "GANimation: edit a face by its action units", videos=None):
    """The page, a gradio.Blocks; with a video section when `videos` (web_demo_video.VideoDemo) is given."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry, no version check online
    try:
        import gradio as gr
    except ImportError as error:
        raise ImportError(f"the web demo needs gradio ({error}): {_INSTALL}") from error
    image = dict(format="png", interactive=False)  # PNG: pixels outside the face stay exact
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(f"## {title}\nModel: {demo.model.kind} `{demo.model.source}`, {demo.model.image_size} px. "
                    "Sliders are FACS action-unit intensities in [0, 1]; the edit runs when a slider is released.")
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Photo (JPEG, PNG or WebP)", file_types=list(image_files.PHOTO_EXTENSIONS),
                                 type="filepath", elem_id="photo-upload")
                if demo.config.examples:
                    gr.Examples([[path] for path in demo.config.examples], inputs=[upload], label="Examples")
                whole_image = gr.Checkbox(demo.config.whole_image, label="Whole image (when no face is found)",
                                          elem_id="whole-image")
                from_estimate = gr.Checkbox(demo.can_estimate, interactive=demo.can_estimate, elem_id="from-estimate",
                                            label="Start from the face's estimated AUs", info=None if demo.can_estimate
                                            else f"This model cannot estimate AUs: {CANNOT_ESTIMATE_HELP}.")
                preview = gr.Image(label="Photo read (the edited face outlined)", elem_id="preview", **image)
                gif_button = gr.Button("Animation (GIF) from the start AUs", elem_id="gif-button")
                gif = gr.File(label="Animation", elem_id="gif")
            with gr.Column(scale=3):
                status = gr.Markdown("Upload a photo (JPEG, PNG or WebP) or pick an example.", elem_id="status")
                with gr.Row():
                    edited = gr.Image(label="Edited photo", elem_id="edited", **image)
                    attention = gr.Image(label="Attention (white = kept)", elem_id="attention", **image)
                    color = gr.Image(label="Colour map", elem_id="color", **image)
                with gr.Row():
                    presets = [gr.Button(name, size="sm", min_width=80, elem_id=f"preset-{name}")
                               for name in PRESET_BUTTONS]
                with gr.Row():
                    sliders = [gr.Slider(0.0, 1.0, value=0.0, step=SLIDER_STEP, label=slider_label(name),
                                         elem_id=f"au-{name}", min_width=200) for name in action_units.AU_NAMES]

        def photo_event(path, whole, estimate):
            result = on_photo(demo, path, whole, estimate)
            keys = ("state", "status", "preview", "edited", "attention", "color")
            return [result[key] for key in keys] + (result["sliders"] or [gr.skip()] * len(sliders))

        def edit_event(page_state, *aus):
            return operator.itemgetter("edited", "attention", "color", "status")(on_edit(demo, page_state, aus))

        def gif_event(page_state, *aus):
            return operator.itemgetter("gif", "status")(on_gif(demo, page_state, aus))

        for trigger in (upload.change, whole_image.input, from_estimate.input):
            trigger(photo_event, [upload, whole_image, from_estimate],
                    [state, status, preview, edited, attention, color, *sliders])
        edit_io = dict(fn=edit_event, inputs=[state, *sliders], outputs=[edited, attention, color, status])
        for slider in sliders:
            slider.release(**edit_io)
        for name, button in zip(PRESET_BUTTONS, presets):
            values = [round(float(value), 2) for value in action_units.preset(name)]
            button.click(lambda values=values: values, None, sliders).then(**edit_io)
        gif_button.click(gif_event, [state, *sliders], [gif, status])
        if videos is not None:
            web_demo_video.layout(gr, videos, PRESET_BUTTONS)
    app.queue(default_concurrency_limit=demo.config.concurrency, max_size=demo.config.max_queue)
    return app


def launch(app, config: DemoConfig) -> str:
    """Serves the page on config.host:config.port (`share` only when asked) in a thread; returns its URL
    (the public one with share). `app.block_thread()` then serves until Ctrl+C; `app.close()` stops it."""
    # gr.Examples copies its photos into gradio's cache when the page is built: no folder is opened to it.
    app.launch(server_name=config.host, server_port=config.port, share=config.share,
               max_file_size=config.max_file_size, ssr_mode=False, quiet=True, prevent_thread_lock=True,
               footer_links=[])
    return app.share_url or app.local_url
