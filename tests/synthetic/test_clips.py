"""Tests for tf_ganimation/synthetic/clips.py: the known AU curve, the head motion and the rendered frames."""

import numpy as np
import pytest

from tf_ganimation.core import action_units
from tf_ganimation.synthetic import clips, renderer
from tf_ganimation.synthetic.identity import Identity


def test_true_aus_hold_and_ramp_through_the_keyframes():
    aus = clips.true_aus([0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 10.0])
    happy = action_units.preset("happy")
    np.testing.assert_allclose(aus[:3], 0.0)  # neutral, held
    np.testing.assert_allclose(aus[3], 0.5 * happy, atol=1e-6)  # half-way up the ramp
    np.testing.assert_allclose(aus[4:6], [happy, happy])
    np.testing.assert_allclose(aus[6], 0.0)  # after the last keyframe (neutral)
    with pytest.raises(ValueError, match="must not decrease"):
        clips.true_aus([0.0], ((1.0, "happy"), (0.0, "sad")))


def test_head_motion_is_small_and_periodic():
    identity = Identity()
    moved = clips.head_motion(identity, 0.6)
    assert moved != identity and abs(moved.center_x - identity.center_x) <= 0.03
    assert abs(moved.tilt - identity.tilt) <= 3.0 and abs(moved.scale / identity.scale - 1) <= 0.04
    after_a_period = clips.head_motion(identity, 2.5 + 0.6)
    assert after_a_period.center_x == pytest.approx(moved.center_x) and after_a_period.tilt == pytest.approx(moved.tilt)


def test_render_clip_draws_each_frame_with_its_aus_and_motion():
    identity, times = Identity(), np.array([0.0, 0.6, 1.2])
    aus = clips.true_aus(times)
    frames = list(clips.render_clip(identity, aus, times, size=32))
    assert len(frames) == 3 and all(frame.shape == (32, 32, 3) and frame.dtype == np.uint8 for frame in frames)
    np.testing.assert_array_equal(frames[2], renderer.render_face(clips.head_motion(identity, 1.2), aus[2], 32))
    still = list(clips.render_clip(identity, aus, times, size=32, motion=None))
    np.testing.assert_array_equal(still[0], renderer.render_face(identity, aus[0], 32))
    with pytest.raises(ValueError, match="for 3 times"):
        list(clips.render_clip(identity, aus[:2], times))
