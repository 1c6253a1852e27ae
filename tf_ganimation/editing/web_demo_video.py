"""The web demo's video tab: upload a short clip, choose a preset or a curve, download the edited MP4.

    videos = VideoDemo(model, detector=detector)
    result = videos.edit("clip.mp4", preset="happy", curve="")     # {"video": path or None, "status": text}

The tab runs scripts/animate.py --video (video_job.run) on the uploaded clip, with the demo's limits: at
most `max_seconds` of video and `max_pixels` per frame (720p), since a 2-core CPU edits a few 720p frames
per second (BENCHMARKS.md, "Video"). Output files live in a temporary folder removed with the object;
the last `keep` of them are kept for download. gradio is not imported here: web_demo.build_app passes
its module to `layout`.
"""

from __future__ import annotations

import collections
import dataclasses
import pathlib
import tempfile
import threading
import uuid

from tf_ganimation.editing import video_edit, video_io, video_job
from tf_ganimation.faces import detection
from tf_ganimation.model.edit_model import EditModel


@dataclasses.dataclass(frozen=True)
class VideoDemoConfig:
    """The tab's limits.

    Attributes:
        max_seconds: the longest clip accepted, in seconds (> 0).
        max_pixels: the largest frame accepted, width x height.
        detect_every: the detector's cadence (face_tracks.TrackerConfig.detect_every).
        keep: edited videos kept for download (older ones are deleted).
    """

    max_seconds: float = 10.0
    max_pixels: int = 1280 * 720
    detect_every: int = 5
    keep: int = 4

    def __post_init__(self):
        if not (isinstance(self.max_seconds, (int, float)) and self.max_seconds > 0):
            raise ValueError(f"max_seconds={self.max_seconds!r} is invalid: expected a number > 0")
        for name in ("max_pixels", "detect_every", "keep"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid: expected an integer >= 1")


class VideoDemo:
    """Edits uploaded clips one at a time (a lock: two clips at once would only share the CPU)."""

    def __init__(self, model: EditModel, config: VideoDemoConfig = VideoDemoConfig(),
                 detector: detection.FaceDetector | None = None):
        self.model, self.config, self._detector = model, config, detector
        self._folder = tempfile.TemporaryDirectory(prefix="tf_ganimation_video_demo_")
        self._outputs: collections.deque[pathlib.Path] = collections.deque()
        self._lock = threading.Lock()

    def edit(self, path: str | None, preset: str, curve: str) -> dict:
        """{"video": the edited MP4's path or None, "status": a sentence for the page}; never raises for bad input."""
        if not path:
            return {"video": None, "status": "Upload a video (MP4, MOV or MKV) first."}
        try:
            info = video_io.probe(path, self.config.max_pixels)
            seconds = info.duration_s or info.num_frames / float(info.frame_rate)
            if seconds > self.config.max_seconds:
                return {"video": None, "status": f"The clip lasts {seconds:.1f} s: the demo edits clips of at most "
                                                 f"{self.config.max_seconds:g} s (use scripts/animate.py for longer)."}
            out = pathlib.Path(self._folder.name) / f"edited_{uuid.uuid4().hex[:8]}.mp4"
            edit = video_edit.VideoEditConfig(tracker=video_job.tracker_config(self.config.detect_every, 2.0),
                                              max_pixels=self.config.max_pixels)
            job = video_job.VideoJob(model="web demo", video=path, out=str(out), curve=curve.strip(),
                                     expression="" if curve.strip() else (preset or "neutral"), edit=edit)
            with self._lock:
                self._detector = self._detector or detection.FaceDetector()  # built once, on the first clip
                summary = video_job.run(job, model=self.model, detector=self._detector, stream=None)
        except (ValueError, FileNotFoundError) as error:
            return {"video": None, "status": f"Not edited: {error}"}
        self._remember(out)
        return {"video": str(out), "status": f"Edited {summary['frames']} frames ({summary['frames_with_faces']} "
                                             f"with a face) in {summary['seconds']:.0f} s."}

    def _remember(self, path: pathlib.Path) -> None:
        self._outputs.append(path)
        while len(self._outputs) > self.config.keep:
            self._outputs.popleft().unlink(missing_ok=True)


def layout(gr, videos: VideoDemo, presets: tuple[str, ...]) -> None:
    """The video section of the page, inside web_demo.build_app's gradio.Blocks (`gr` is the gradio module)."""
    with gr.Accordion("Video: edit every frame of a short clip", open=False, elem_id="video-section"):
        gr.Markdown(f"Clips of at most {videos.config.max_seconds:g} s and 720p; faces are found every "
                    f"{videos.config.detect_every} frames and tracked. A 2-core CPU edits a 720p clip at about 25 "
                    "frames per second with the quick-start model, 6 with the paper-size one.")
        with gr.Row():
            clip = gr.Video(label="Clip (MP4, MOV or MKV)", sources=["upload"], elem_id="video-upload")
            edited = gr.Video(label="Edited clip", interactive=False, elem_id="video-edited")
        with gr.Row():
            preset = gr.Dropdown(list(presets), value="happy", label="Expression on every frame",
                                 elem_id="video-preset")
            curve = gr.Textbox(label="Or a curve (overrides the expression)", elem_id="video-curve",
                               placeholder="0s:neutral,1.5s:happy,3s:surprise")
        button = gr.Button("Edit the clip", elem_id="video-button")
        status = gr.Markdown("", elem_id="video-status")

        def video_event(path, preset_name, curve_text):
            result = videos.edit(path, preset_name, curve_text or "")
            return result["video"], result["status"]

        button.click(video_event, [clip, preset, curve], [edited, status], concurrency_limit=1)
