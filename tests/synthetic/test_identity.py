"""Tests for tf_ganimation/synthetic/identity.py: the Identity dataclass and sample_identity."""

import json

import numpy as np
import pytest

from tf_ganimation.synthetic.identity import HAIR_STYLES, Identity, sample_identity


def _identities(count: int, seed: int = 0) -> list[Identity]:
    rng = np.random.default_rng(seed)
    return [sample_identity(rng) for _ in range(count)]


def test_identity_round_trips_through_json_and_validates():
    identity = _identities(1)[0]
    assert Identity.from_dict(json.loads(json.dumps(identity.to_dict()))) == identity
    values = identity.to_dict()
    del values["skin_color"]
    with pytest.raises(ValueError, match="skin_color"):
        Identity.from_dict(values)
    with pytest.raises(ValueError, match="hair_style"):
        Identity(hair_style=len(HAIR_STYLES))


def test_sample_identity_is_reproducible():
    assert _identities(3, seed=7) == _identities(3, seed=7)
    assert _identities(1, seed=7) != _identities(1, seed=8)
