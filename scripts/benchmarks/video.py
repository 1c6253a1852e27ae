"""Video editing speed and memory: frames/s of a 720p clip with one face, split into its stages.

    python scripts/benchmarks/video.py --model=runs/quickstart --detect_every=1,5,10
    python scripts/benchmarks/video.py --paper_size --detect_every=10      # paper-size generator, random weights
    python scripts/benchmarks/video.py --model=runs/quickstart --frames=48,192 --detect_every=5   # memory vs length
    python scripts/benchmarks/video.py --model=runs/quickstart --detect_every=5 --detection_side=640,320
    python scripts/benchmarks/video.py --tracking_error --detect_every=1,5,10    # what skipping detections costs

Makes a --frames-long 1280x720 clip of the astronaut photo (scaled up, panning and zooming slowly, with
a tone as audio), then runs the whole --video edit (video_job.run: the detection pass, the batched edit
pass, encoding) once per --detect_every value, each in a fresh subprocess so that its peak memory (max
RSS) is its own. The start-up (loading the model, building the detector, their first calls) is timed
apart; frames/s is the clip's frames over the rest of the run. Prints a markdown table: frames/s, the
start-up, milliseconds per frame in decode (both passes), detection, edit (crops and the generator),
paste-back and encode, and the peak RSS. Decoding and encoding run on their own threads beside the
edit (video_edit), so the stages add up to more than the wall time. A benchmark, not a test: numbers
depend on the machine and on what else runs on it.
"""

import json
import pathlib
import resource
import subprocess
import sys
import tempfile

from tf_ganimation import cli  # before anything loads TensorFlow: cli readies its start (cli.py)

# isort: split
import numpy as np
from absl import flags
from PIL import Image

_MODEL = flags.DEFINE_string("model", None, "A run folder, SavedModel or .tflite (see scripts/animate.py).")
_PAPER = flags.DEFINE_bool("paper_size", False, "Use the paper's generator (128 px, 64 filters, 6 blocks), random "
                           "weights, instead of --model.")
_FRAMES = flags.DEFINE_list("frames", ["250"], "Clip lengths in frames (25 frames/s).")
_EVERY = flags.DEFINE_list("detect_every", ["1", "5", "10"], "Detector cadences to compare.")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Frames per model call.")
_SIDE = flags.DEFINE_list("detection_side", ["640"], "Longer sides of the detector's copy to compare.")
_PHOTO = flags.DEFINE_string(
    "photo", str(pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "photos" / "astronaut.png"),
    "The photo the clip is made of (one face).")
_CHILD = flags.DEFINE_string("child", None, "Internal: run one measurement on this clip and print its JSON.")
_TRACKING = flags.DEFINE_bool("tracking_error", False, "Instead: how far the tracked landmarks of every k-th-frame "
                              "detection lie from every-frame detection, on a synthetic clip with head motion.")
FLAGS = flags.FLAGS


def make_clip(path: pathlib.Path, num_frames: int) -> None:
    from tf_ganimation.editing import video_writer

    photo = Image.open(_PHOTO.value).convert("RGB").resize((1600, 1600), Image.Resampling.BICUBIC)
    canvas = np.asarray(photo)

    def frames():
        for index in range(num_frames):
            left, top = 150 + index % 100, 250 + (index // 2) % 50
            yield np.ascontiguousarray(canvas[top:top + 720, left:left + 1280])

    video_writer.write_frames(path, frames(), fps=25.0, encoder=video_writer.EncoderConfig(crf=20))


def _paper_model():
    from tf_ganimation.core.config import ModelConfig
    from tf_ganimation.model import edit_model, networks

    return edit_model.KerasEditModel(networks.build_generator(ModelConfig()), 128, source="paper-size, random")


def child(clip: str) -> dict:
    import time

    from tf_ganimation.editing import video_edit, video_io, video_job, video_writer
    from tf_ganimation.export.backends import load_edit_model
    from tf_ganimation.faces import detection

    started = time.perf_counter()
    model = _paper_model() if _PAPER.value else load_edit_model(_MODEL.value)
    detector = detection.FaceDetector()
    side = int(_SIDE.value[0])
    # Start-up, timed apart from the clip: the model's first call traces it, the detector's builds MTCNN's stages.
    detector.detect(next(video_io.read_frames(clip, side)).image)
    model.edit(np.zeros([_BATCH.value, model.image_size, model.image_size, 3], np.float32),
               np.zeros([_BATCH.value, model.num_aus], np.float32))
    start_up = time.perf_counter() - started
    every = int(_EVERY.value[0])
    with tempfile.TemporaryDirectory() as folder:
        edit = video_edit.VideoEditConfig(tracker=video_job.tracker_config(every, 2.0), batch_size=_BATCH.value,
                                          detection_side=side, encoder=video_writer.EncoderConfig())
        job = video_job.VideoJob(model="unused", video=clip, curve="0s:neutral,1s:happy,2s:surprise",
                                 out=str(pathlib.Path(folder) / "out.mp4"), edit=edit)
        summary = video_job.run(job, model=model, detector=detector, stream=None)
    summary["start_up_seconds"] = round(start_up, 2)
    summary["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return summary


def tracking_error() -> None:
    """Landmark distance (in eye distances) between every-frame detection and every k-th, both tracked and smoothed."""
    from tf_ganimation.editing import video_edit, video_job, video_writer
    from tf_ganimation.faces import detection
    from tf_ganimation.synthetic import clips
    from tf_ganimation.synthetic.identity import Identity

    times = np.arange(96) / 24.0
    motion = clips.HeadMotion(sway=0.08, nod=0.04, turn=8.0, zoom=0.1, period_s=2.0)
    frames = clips.render_clip(Identity(), clips.true_aus(times), times, size=480, motion=motion)
    detector = detection.FaceDetector()
    with tempfile.TemporaryDirectory() as folder:
        clip = video_writer.write_frames(pathlib.Path(folder) / "clip.mp4", frames, fps=24.0)
        paths = {}
        for every in map(int, _EVERY.value):
            config = video_edit.VideoEditConfig(tracker=video_job.tracker_config(every, 2.0))
            located = video_edit.locate_faces(clip, detector, config)
            paths[every] = [located.timeline.faces_at(index) for index in range(located.num_frames)]
    print("| detect every | frames with a face | landmark error (eye distances): mean | max |\n|---|---|---|---|")
    reference = paths[min(paths)]
    for every, faces in paths.items():
        errors = []
        for base, other in zip(reference, faces):
            if base and other:
                eyes = np.subtract(base[0].keypoints["right_eye"], base[0].keypoints["left_eye"])
                gap = [np.subtract(base[0].keypoints[name], other[0].keypoints[name])
                       for name in detection.KEYPOINT_NAMES]
                errors.append(np.linalg.norm(gap, axis=1).mean() / np.linalg.norm(eyes))
        print(f"| {every} | {sum(map(bool, faces))}/{len(faces)} | {np.mean(errors):.4f} | {np.max(errors):.4f} |")


def main(argv):
    del argv
    if _TRACKING.value:
        tracking_error()
        return
    if _CHILD.value:
        print(json.dumps(child(_CHILD.value)))
        return
    if not (_MODEL.value or _PAPER.value):
        raise cli.UserError("give --model or --paper_size")
    rows = ["| generator | frames | detect every | detection side | frames/s | start-up | decode | detection | edit "
            "| paste-back | encode | peak RSS |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as folder:
        for frames in map(int, _FRAMES.value):
            clip = pathlib.Path(folder) / f"clip_{frames}.mp4"
            make_clip(clip, frames)
            for every, side in [(every, side) for side in _SIDE.value for every in _EVERY.value]:
                command = [sys.executable, __file__, f"--child={clip}", f"--detect_every={every}",
                           f"--batch_size={_BATCH.value}", f"--photo={_PHOTO.value}", f"--detection_side={side}"]
                command += ["--paper_size"] if _PAPER.value else [f"--model={_MODEL.value}"]
                result = subprocess.run(command, capture_output=True, text=True, check=True)
                summary = json.loads(result.stdout.strip().splitlines()[-1])
                per_frame = {name: 1000 * value / summary["frames"] for name, value in summary["stage_seconds"].items()}
                name = "paper-size" if _PAPER.value else pathlib.Path(_MODEL.value).name
                rows.append(f"| {name} | {frames} | {every} | {side} | {summary['frames_per_second']:.1f} | "
                            f"{summary['start_up_seconds']:.1f} s | "
                            + " | ".join(f"{per_frame[stage]:.1f} ms" for stage in
                                         ("decode", "detection", "edit", "paste_back", "encode"))
                            + f" | {summary['peak_rss_mb']:.0f} MB |")
                print(rows[-1], flush=True)
    print("\n".join(rows))


if __name__ == "__main__":
    cli.run(main)
