"""Tests for tf_ganimation/editing/video_evaluation.py: a short synthetic clip through the whole reenactment."""

import json

import numpy as np
import pytest
from PIL import Image

from tf_ganimation.editing import video_evaluation, video_io
from tf_ganimation.export import backends
from tf_ganimation.synthetic import clips


@pytest.fixture(scope="module")
def result(tiny_run_dir, detector, tmp_path_factory):
    out = tmp_path_factory.mktemp("video_eval")
    config = video_evaluation.ClipConfig(num_frames=10, fps=4.0, size=96, seed=1)
    return out, config, video_evaluation.evaluate_reenactment(backends.load_edit_model(tiny_run_dir), detector, out,
                                                               config)


def test_files_and_figures(result):
    out, config, metrics = result
    assert json.loads((out / "video_metrics.json").read_text()) == {k: v for k, v in metrics.items() if k != "strip"}
    for name in ("driving.mp4", "reenacted.mp4"):
        info = video_io.probe(out / name)
        assert info.num_frames == 10 and (info.width, info.height) == (96, 96) and float(info.frame_rate) == 4.0
    assert metrics["strip"].shape == (3 * 96, 2 * 96, 3)  # truth, estimated, true AUs; frames 0 and 6
    with Image.open(out / "reenactment.gif") as gif:
        assert gif.n_frames == 10 and gif.size == (3 * 96, 96)  # driving | reenacted | truth
    for framing in ("aligned_crop", "whole_frame"):
        _check_figures(metrics[framing])
    assert metrics["whole_frame"]["frames_without_face"] == 0


def _check_figures(metrics):
    l1 = metrics["reenactment_l1"]
    assert len(l1["per_frame"]) == 10 and l1["estimated_aus"] == pytest.approx(np.mean(l1["per_frame"]), abs=1e-3)
    assert l1["identity_baseline"] > 0  # the truth moves away from the neutral photo
    assert l1["true_aus"] != l1["identity_baseline"]  # every frame is its own edit of the photo
    assert len(set(l1["per_frame"])) > 1
    estimation = metrics["au_estimation"]
    assert set(estimation) == {"raw", "smoothed", "constant_baseline"}
    assert len(estimation["raw"]["per_au"]) == 17 and estimation["raw"]["mean"] >= 0


def test_stability_is_measured_where_the_truth_holds(result):
    _, config, metrics = result
    truth = clips.true_aus(np.arange(config.num_frames) / config.fps)
    still = int((np.abs(np.diff(truth, axis=0)).max(axis=1) == 0).sum())
    stability = metrics["aligned_crop"]["temporal_stability"]
    assert stability["frames"] == still > 0
    assert stability["true_aus"] == pytest.approx(0.0, abs=1e-6)  # constant AUs: the same edit every frame
    assert stability["raw"] >= 0 and stability["smoothed"] >= 0


def test_strip_shape():
    frames = np.zeros([20, 8, 8, 3], np.uint8)
    assert video_evaluation.strip(frames, frames, every=5, count=3).shape == (16, 24, 3)

