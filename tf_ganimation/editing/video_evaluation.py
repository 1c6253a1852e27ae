"""Reenactment scored against ground truth: synthetic clips whose true AUs are known frame by frame.

    metrics = evaluate_reenactment(model, detector, out_dir="runs/quickstart/evaluation/video")

A driving clip of one synthetic face (synthetic.clips: the known AU curve, a small head motion) is
written as a video and goes through the real pipeline: detection, tracking, the critic's AU estimates,
temporal smoothing. A still, neutral rendering of another face is reenacted with the estimated track
and compared with the true rendering of that face with the true AUs of every frame. The figures:
  * au_estimation: the mean absolute AU error of the driving track against the true curve, per AU,
    raw and after smoothing, next to a constant baseline (every frame given the curve's mean);
  * reenactment_l1: the paired L1 (on [0, 255], the whole frame) of the reenacted frames against the
    true renderings, frame by frame, with the estimated track, with the true AUs (the generator's own
    share of the error) and for the unedited photo (the identity baseline);
  * temporal_stability: the mean absolute frame-to-frame change of the reenacted frames over the
    frames where the true AUs do not change (the truth's own change there is 0), raw and smoothed.
Each figure is given for the video pipeline's aligned face crops and for the whole frame as the
model's input (see evaluate_reenactment).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import numpy as np

from tf_ganimation.core import action_units, atomic
from tf_ganimation.editing import au_curves, outputs, reenactment, video_edit, video_io, video_writer
from tf_ganimation.editing.editor import Editor, EditorConfig
from tf_ganimation.faces import detection
from tf_ganimation.model.edit_model import EditModel
from tf_ganimation.synthetic import clips, renderer
from tf_ganimation.synthetic.identity import Identity, sample_identity


@dataclasses.dataclass(frozen=True)
class ClipConfig:
    """The synthetic clip: frames, rate, size, seed of the two faces, AU smoothing of the driving track."""

    num_frames: int = 48
    fps: float = 12.0
    size: int = 128
    seed: int = 0
    au_smoothing_s: float = 0.08

    def __post_init__(self):
        if not (isinstance(self.num_frames, int) and 2 <= self.num_frames <= 2000):
            raise ValueError(f"num_frames={self.num_frames!r} is invalid: expected an integer in [2, 2000]")
        if not (isinstance(self.size, int) and 48 <= self.size <= renderer.MAX_SIZE):
            raise ValueError(f"size={self.size!r} is invalid: expected an integer in [48, {renderer.MAX_SIZE}]")


def _faces(seed: int, detector: detection.FaceDetector, size: int) -> tuple[Identity, Identity]:
    """The driving and the target face: the first two identities drawn from `seed` whose neutral
    rendering the detector finds (MTCNN misses about one synthetic face in ten)."""
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(50):
        identity = sample_identity(rng)
        if detector.detect(renderer.render_face(identity, np.zeros(action_units.NUM_AUS, np.float32), size)):
            found.append(identity)
            if len(found) == 2:
                return found[0], found[1]
    raise ValueError(f"the detector found fewer than 2 of 50 synthetic faces at {size} px (seed {seed})")


def _reenact(editor: Editor, photo: np.ndarray, crops, aus: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """uint8 [N, H, W, 3]: the photo's faces edited to each row of aus [N, 17]."""
    frames = []
    for start in range(0, len(aus), batch_size):
        targets = aus[start:start + batch_size]
        frames += video_edit.edit_batch(editor, [photo] * len(targets), [crops] * len(targets), targets,
                                        video_edit.StageTimer())
    return np.stack(frames)


def _l1(frames: np.ndarray, truths: np.ndarray) -> np.ndarray:
    return np.abs(frames.astype(np.float32) - truths.astype(np.float32)).mean(axis=(1, 2, 3))


def _stability(frames: np.ndarray, still: np.ndarray) -> float:
    changes = np.abs(np.diff(frames.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))
    return float(changes[still].mean()) if still.any() else float("nan")


def _whole_frame_track(path: os.PathLike, editor: Editor) -> tuple[np.ndarray, np.ndarray]:
    """The critic's AUs of every decoded frame seen whole (the training framing): times [N] and AUs [N, 17]."""
    times, aus = [], []
    for frame in video_io.read_frames(path):
        crop = editor.find_faces(frame.image)[0].crop
        times.append(frame.time)
        aus.append(editor.model.estimate_aus(crop[None] / np.float32(255))[0])
    return np.asarray(times), np.stack(aus)


def _score(editor: Editor, photo: np.ndarray, times: np.ndarray, raw: np.ndarray, seen: np.ndarray,
           truth: np.ndarray, truths: np.ndarray, sigma_s: float) -> tuple[dict, np.ndarray, np.ndarray]:
    """The figures of one framing; also the reenacted frames (smoothed track) and those with the true AUs."""
    smoothed = np.clip(au_curves.smooth(times[seen], raw[seen], sigma_s), 0.0, 1.0)
    smoothed = au_curves.AUCurve(times[seen], smoothed, "linear").at(times)
    raw = au_curves.AUCurve(times[seen], raw[seen], "linear").at(times)
    crops = editor.find_faces(photo, "the synthetic target face")
    reenacted, reenacted_raw = _reenact(editor, photo, crops, smoothed), _reenact(editor, photo, crops, raw)
    oracle = _reenact(editor, photo, crops, truth)
    still = np.abs(np.diff(truth, axis=0)).max(axis=1) == 0

    def errors(estimate):
        per_au = np.abs(estimate[seen] - truth[seen]).mean(axis=0)
        return {"mean": float(per_au.mean()),
                "per_au": {name: round(float(value), 4) for name, value in zip(action_units.AU_NAMES, per_au)}}

    figures = {
        "frames_without_face": int((~seen).sum()),
        "au_estimation": {"raw": errors(raw), "smoothed": errors(smoothed),
                          "constant_baseline": errors(np.broadcast_to(truth.mean(axis=0), truth.shape))},
        "reenactment_l1": {
            "estimated_aus": float(_l1(reenacted, truths).mean()),
            "true_aus": float(_l1(oracle, truths).mean()),
            "identity_baseline": float(_l1(np.broadcast_to(photo, truths.shape), truths).mean()),
            "per_frame": [round(float(value), 3) for value in _l1(reenacted, truths)],
        },
        "temporal_stability": {"frames": int(still.sum()), "smoothed": _stability(reenacted, still),
                               "raw": _stability(reenacted_raw, still), "true_aus": _stability(oracle, still)},
    }
    return figures, reenacted, oracle


def evaluate_reenactment(model: EditModel, detector: detection.FaceDetector, out_dir: os.PathLike,
                         config: ClipConfig = ClipConfig()) -> dict:
    """Writes the driving clip, the reenacted clip, reenactment.gif (driving | reenacted | truth, side by
    side) and video_metrics.json into out_dir; returns the metrics.

    Two framings are scored: "aligned_crop", the video pipeline (MTCNN, tracking, the aligned crop of
    alignment.crop_face, paste-back), and "whole_frame", the whole frame as the model's input (the
    framing a synthetic training set has; editor whole_image), which shows what the crop costs.

    Raises:
        ValueError: the model has no critic (reenactment.estimate_track), or no face found in the clip.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    driver, target = _faces(config.seed, detector, config.size)
    times = np.arange(config.num_frames) / config.fps
    truth = clips.true_aus(times)
    driving_frames = list(clips.render_clip(driver, truth, times, config.size))
    driving = video_writer.write_frames(out / "driving.mp4", driving_frames, config.fps,
                                        video_writer.EncoderConfig(crf=12))
    photo = renderer.render_face(target, np.zeros(truth.shape[1], np.float32), config.size)
    truths = np.stack([renderer.render_face(target, aus, config.size) for aus in truth])
    editor = Editor(model, detector=detector)
    track = reenactment.estimate_track(driving, editor, video_edit.VideoEditConfig(batch_size=16))
    metrics: dict = {"clip": dataclasses.asdict(config)}
    metrics["aligned_crop"], reenacted, oracle = _score(editor, photo, track.times, track.aus, track.seen, truth,
                                                        truths, config.au_smoothing_s)
    whole = Editor(model, EditorConfig(whole_image=True))
    whole_times, whole_aus = _whole_frame_track(driving, whole)
    metrics["whole_frame"] = _score(whole, photo, whole_times, whole_aus, np.ones(len(whole_times), bool), truth,
                                    truths, config.au_smoothing_s)[0]
    with video_writer.VideoWriter(out / "reenacted.mp4", video_io.probe(driving)) as writer:
        for frame, pts in zip(reenacted, track.pts):
            writer.write(frame, int(pts))
    outputs.write_animation([np.concatenate(row, axis=1) for row in zip(driving_frames, reenacted, truths)],
                            out / "reenactment.gif", config.fps, max_side=0)
    atomic.write_json(out / "video_metrics.json", metrics, indent=2)
    metrics["strip"] = strip(truths, reenacted, oracle)
    return metrics


def strip(*rows: np.ndarray, every: int = 6, count: int = 8) -> np.ndarray:
    """uint8 [len(rows) * S, count * S, 3]: every `every`-th frame of each row of clips side by side."""
    picks = np.arange(0, len(rows[0]), every)[:count]
    return np.concatenate([np.concatenate(list(row[picks]), axis=1) for row in rows], axis=0)
