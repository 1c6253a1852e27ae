"""Facial Action Units (FACS): the 17 AUs GANimation is conditioned on, their order, and expressions.

The order is OpenFace's intensity columns (`AU01_r` ... `AU45_r`), which is also the order of the
authors' `aus_openface.pkl` vectors. Every AU vector in this package, from the data pipeline through
the networks to the serving signature, is float32 [..., 17] in [0, 1] in this order.

OpenFace reports intensities on the FACS A-E scale as 0..5; GANimation divides by 5.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

# (name, FACS description), in OpenFace's column order.
_ACTION_UNITS: tuple[tuple[str, str], ...] = (
    ("AU01", "inner brow raiser"),
    ("AU02", "outer brow raiser"),
    ("AU04", "brow lowerer"),
    ("AU05", "upper lid raiser"),
    ("AU06", "cheek raiser"),
    ("AU07", "lid tightener"),
    ("AU09", "nose wrinkler"),
    ("AU10", "upper lip raiser"),
    ("AU12", "lip corner puller"),
    ("AU14", "dimpler"),
    ("AU15", "lip corner depressor"),
    ("AU17", "chin raiser"),
    ("AU20", "lip stretcher"),
    ("AU23", "lip tightener"),
    ("AU25", "lips part"),
    ("AU26", "jaw drop"),
    ("AU45", "blink"),
)

AU_NAMES: tuple[str, ...] = tuple(name for name, _ in _ACTION_UNITS)
AU_DESCRIPTIONS: Mapping[str, str] = dict(_ACTION_UNITS)
NUM_AUS = len(AU_NAMES)
# OpenFace's intensity scale: 0 (absent) .. 5 (maximum, FACS level E).
MAX_RAW_INTENSITY = 5.0

# Prototypical emotions as FACS/EMFACS AU combinations (Ekman & Friesen; Du et al. 2014), with
# intensities in [0, 1] chosen to read clearly without saturating every AU.
PRESETS: Mapping[str, Mapping[str, float]] = {
    "neutral": {},
    "happy": {"AU06": 0.8, "AU12": 1.0},
    "sad": {"AU01": 0.8, "AU04": 0.6, "AU15": 0.8},
    "surprise": {"AU01": 0.8, "AU02": 0.8, "AU05": 0.8, "AU26": 0.8},
    "fear": {"AU01": 0.7, "AU02": 0.6, "AU04": 0.5, "AU05": 0.8, "AU07": 0.4, "AU20": 0.6, "AU26": 0.6},
    "anger": {"AU04": 0.9, "AU05": 0.6, "AU07": 0.7, "AU23": 0.8},
    "disgust": {"AU09": 0.9, "AU10": 0.7, "AU15": 0.5, "AU17": 0.5},
    "contempt": {"AU12": 0.3, "AU14": 0.4},
}

_PAIR = re.compile(r"^\s*(AU\d{1,2})\s*=\s*([^,]+?)\s*$", re.IGNORECASE)


def au_index(name: str) -> int:
    """Position of an AU in the 17-vector; accepts `AU12`, `au12`, `AU6` or `AU06`."""
    canonical = _canonical_name(name)
    return AU_NAMES.index(canonical)


def _canonical_name(name: str) -> str:
    match = re.fullmatch(r"\s*AU0*(\d{1,2})\s*(_r)?\s*", name, re.IGNORECASE)
    canonical = f"AU{int(match.group(1)):02d}" if match else name
    if canonical not in AU_NAMES:
        raise ValueError(f"unknown action unit {name!r}; known: {', '.join(AU_NAMES)}")
    return canonical


def normalize_intensities(raw: np.ndarray | Sequence[float]) -> np.ndarray:
    """OpenFace intensities [..., 17] in [0, 5] -> float32 [..., 17] in [0, 1] (divide by 5, clip)."""
    raw = np.asarray(raw, dtype=np.float32)
    return np.clip(raw / MAX_RAW_INTENSITY, 0.0, 1.0)


def from_mapping(intensities: Mapping[str, float]) -> np.ndarray:
    """{"AU12": 0.8, ...} -> float32 [17] in [0, 1]; AUs not named are 0.

    Raises:
        ValueError: an unknown AU name, or an intensity that is not a finite number in [0, 1].
    """
    vector = np.zeros([NUM_AUS], np.float32)
    for name, value in intensities.items():
        value = float(value)
        if not np.isfinite(value) or not 0.0 <= value <= 1.0:
            raise ValueError(f"intensity of {name} must be a number in [0, 1], got {value}")
        vector[au_index(name)] = value
    return vector


def parse_aus(text: str) -> np.ndarray:
    """Parses `"AU12=0.8,AU06=0.5"` into float32 [17] in [0, 1]; unnamed AUs are 0."""
    intensities = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        match = _PAIR.match(item)
        if not match:
            raise ValueError(f"cannot parse {item!r} in {text!r}: expected AU<number>=<intensity>")
        try:
            intensities[match.group(1)] = float(match.group(2))
        except ValueError:
            raise ValueError(f"intensity {match.group(2)!r} in {text!r} is not a number") from None
    return from_mapping(intensities)


def preset(name: str) -> np.ndarray:
    """A prototypical emotion by name (see PRESETS) as float32 [17] in [0, 1]."""
    key = name.strip().lower()
    if key not in PRESETS:
        raise ValueError(f"unknown expression {name!r}; known: {', '.join(PRESETS)}")
    return from_mapping(PRESETS[key])


def parse_expression(text: str) -> np.ndarray:
    """An expression as users write it -> float32 [17] in [0, 1].

    Accepts a preset (`happy`), a weighted mix of presets (`happy:0.5+surprise:0.5`, weights scale
    each preset's intensities, the sum is clipped to [0, 1]), or explicit AUs (`AU12=1,AU06=0.8`).
    """
    if "=" in text:
        return parse_aus(text)
    total = np.zeros([NUM_AUS], np.float32)
    for term in filter(None, (part.strip() for part in text.split("+"))):
        name, _, weight_text = term.partition(":")
        try:
            weight = float(weight_text) if weight_text else 1.0
        except ValueError:
            raise ValueError(f"weight {weight_text!r} of {name!r} in {text!r} is not a number") from None
        if not np.isfinite(weight) or weight < 0.0:
            raise ValueError(f"weight of {name!r} in {text!r} must be a non-negative number, got {weight}")
        total += weight * preset(name)
    return np.clip(total, 0.0, 1.0)


def interpolate(start: np.ndarray, end: np.ndarray, num_frames: int) -> np.ndarray:
    """Linear path between two AU vectors: float32 [num_frames, 17], first row start, last row end."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    start = np.asarray(start, np.float32)
    end = np.asarray(end, np.float32)
    if num_frames == 1:
        return end[None, :].copy()
    weights = np.linspace(0.0, 1.0, num_frames, dtype=np.float32)[:, None]
    return (1.0 - weights) * start + weights * end



def parse_expression_sequence(text: str) -> np.ndarray:
    """A sequence of expressions, for animations -> float32 [K, 17] in [0, 1], K >= 1.

    `;` always separates expressions; `,` separates them too unless the text names AUs (`=`), where
    it separates AU pairs. So `neutral,happy,surprise` and `happy;AU01=1,AU02=1` are sequences of 3
    and 2, while `AU12=1,AU06=0.8` is one expression. Each part is read by `parse_expression`.
    """
    separator = ";" if ";" in text or "=" in text else ","
    parts = [part.strip() for part in text.split(separator)]
    if not any(parts):
        raise ValueError(f"expression {text!r} is empty: expected e.g. happy, happy:0.5+surprise:0.5, "
                         "AU12=1,AU06=0.8 or a sequence neutral,happy,surprise")
    if not all(parts):
        raise ValueError(f"expression sequence {text!r} has an empty part; separate expressions with "
                         f"{separator!r}")
    return np.stack([parse_expression(part) for part in parts])


def interpolate_keyframes(keyframes: np.ndarray, num_frames: int) -> np.ndarray:
    """Piecewise-linear path through K AU vectors spaced evenly in time: float32 [num_frames, 17].

    The first row is keyframes[0] and the last keyframes[-1] (for num_frames >= 2); with K = 2 this is
    `interpolate`. With num_frames = 1 the single row is the last keyframe, as in `interpolate`.
    """
    keyframes = np.asarray(keyframes, np.float32)
    if keyframes.ndim != 2 or keyframes.shape[0] < 1:
        raise ValueError(f"keyframes of shape {list(keyframes.shape)}: expected [K >= 1, {NUM_AUS}]")
    if not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise ValueError(f"num_frames must be an integer >= 1, got {num_frames!r}")
    if num_frames == 1 or keyframes.shape[0] == 1:
        return np.repeat(keyframes[-1:], num_frames, axis=0)
    positions = np.linspace(0.0, keyframes.shape[0] - 1.0, num_frames)
    segment = np.minimum(np.floor(positions).astype(int), keyframes.shape[0] - 2)
    weights = (positions - segment).astype(np.float32)[:, None]
    return (1.0 - weights) * keyframes[segment] + weights * keyframes[segment + 1]


def describe_vocabulary() -> str:
    """The AUs (FACS names) and the expression presets, as the text `scripts/animate.py --list` prints."""
    lines = ["Action units (intensity 0..1 = OpenFace intensity / 5), in the model's order:"]
    lines += [f"  {name}  {AU_DESCRIPTIONS[name]}" for name in AU_NAMES]
    lines.append("Expressions (mix them as happy:0.5+surprise:0.5, or give AUs as AU12=1,AU06=0.8):")
    for expression, intensities in PRESETS.items():
        listed = " + ".join(f"{name} {value:g}" for name, value in intensities.items()) or "all AUs 0"
        lines.append(f"  {expression:<9} {listed}")
    return "\n".join(lines)
