"""AU curves: the target expression as a function of time, for editing a video frame by frame.

    curve = parse_keyframes("0s:neutral,1.5s:happy,3s:surprise")   # eases between keyframes
    curve = spread(action_units.parse_expression_sequence("neutral,happy"), duration_s=4.0)
    curve = read_csv("track.csv")      # OpenFace FeatureExtraction output, or write_csv's
    aus = curve.at(frame_times)        # float32 [N, 17] in [0, 1]

An AU track file is a CSV with a time column (`timestamp`, OpenFace's name, or `time`) in seconds and
the 17 intensity columns `AU01_r` .. `AU45_r` on OpenFace's 0..5 scale (action_units.MAX_RAW_INTENSITY);
OpenFace's other columns are ignored, and rows whose `success` is 0 (no face) are skipped. write_csv
writes `frame, timestamp, success` and the 17 columns, so its files and OpenFace's read the same way.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import pathlib
import re

import numpy as np

from tf_ganimation.core import action_units, atomic

INTERPOLATIONS = ("smooth", "linear")
AU_COLUMNS = tuple(f"{name}_r" for name in action_units.AU_NAMES)
TIME_COLUMNS = ("timestamp", "time")
_TIME = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)?\s*$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True, eq=False)
class AUCurve:
    """AU vectors at increasing times, and how to read between them.

    Attributes:
        times: float64 [K] seconds, strictly increasing, K >= 1.
        aus: float32 [K, 17] in [0, 1].
        interpolation: "smooth" eases in and out of every keyframe (smoothstep weights, so the AUs stay
            between their neighbours and the change starts and stops gently); "linear" joins them with
            straight lines (dense tracks).

    Before the first time the curve holds the first vector, after the last the last.
    """

    times: np.ndarray
    aus: np.ndarray
    interpolation: str = "smooth"

    def __post_init__(self):
        times = np.asarray(self.times, np.float64).reshape(-1)
        aus = np.asarray(self.aus, np.float32)
        if aus.shape != (times.size, action_units.NUM_AUS) or times.size < 1:
            raise ValueError(f"an AU curve needs K >= 1 times and [K, {action_units.NUM_AUS}] AUs, got "
                             f"{times.size} times and AUs of shape {list(aus.shape)}")
        if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
            raise ValueError(f"curve times must be finite and strictly increasing, got {times.tolist()[:10]}")
        if not np.all(np.isfinite(aus)) or aus.min() < 0.0 or aus.max() > 1.0:
            raise ValueError("curve AU intensities must be finite numbers in [0, 1]")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation={self.interpolation!r} is invalid: expected one of {INTERPOLATIONS}")
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "aus", aus)

    def at(self, times) -> np.ndarray:
        """The AUs at `times` (seconds, float [N]): float32 [N, 17] in [0, 1]."""
        times = np.asarray(times, np.float64).reshape(-1)
        if self.times.size == 1:
            return np.repeat(self.aus, times.size, axis=0)
        segment = np.clip(np.searchsorted(self.times, times, side="right") - 1, 0, self.times.size - 2)
        start, end = self.times[segment], self.times[segment + 1]
        weight = np.clip((times - start) / (end - start), 0.0, 1.0)
        if self.interpolation == "smooth":
            weight = weight * weight * (3.0 - 2.0 * weight)
        weight = weight.astype(np.float32)[:, None]
        return (1.0 - weight) * self.aus[segment] + weight * self.aus[segment + 1]

    @property
    def duration_s(self) -> float:
        return float(self.times[-1] - self.times[0])


def constant(aus) -> AUCurve:
    """One AU vector (float [17] in [0, 1]) at every time."""
    return AUCurve(np.zeros(1), np.asarray(aus, np.float32)[None])


def spread(keyframes, duration_s: float) -> AUCurve:
    """K expressions (float [K, 17]) spaced evenly from 0 to duration_s, eased between (a --expression sequence)."""
    keyframes = np.asarray(keyframes, np.float32)
    if keyframes.ndim != 2 or keyframes.shape[0] < 1:
        raise ValueError(f"keyframes of shape {list(keyframes.shape)}: expected [K >= 1, {action_units.NUM_AUS}]")
    if keyframes.shape[0] == 1:
        return constant(keyframes[0])
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"a sequence of {keyframes.shape[0]} expressions needs a duration > 0, got {duration_s}")
    return AUCurve(np.linspace(0.0, duration_s, keyframes.shape[0]), keyframes)


def parse_time(text: str) -> float:
    """`1.5s`, `1.5` (seconds) or `500ms` -> seconds."""
    match = _TIME.match(text)
    if not match:
        raise ValueError(f"time {text!r} is invalid: expected seconds such as 1.5s, 1.5 or 500ms")
    value = float(match.group(1))
    return value / 1000.0 if (match.group(2) or "").lower() == "ms" else value


def parse_keyframes(text: str) -> AUCurve:
    """Keyframes `<time>:<expression>` -> a smooth AUCurve.

    Keyframes are separated by `,`, or by `;` when an expression names AUs (`0s:neutral;2s:AU12=1,AU06=0.8`).
    Each expression is read by action_units.parse_expression (a preset, a mix `happy:0.5+surprise:0.5`,
    or AUs); times must increase.
    """
    separator = ";" if ";" in text or "=" in text else ","
    parts = [part.strip() for part in text.split(separator)]
    if not any(parts):
        raise ValueError(f"--curve {text!r} is empty: expected keyframes such as 0s:neutral,1.5s:happy,3s:surprise")
    times, aus = [], []
    for part in parts:
        time_text, colon, expression = part.partition(":")
        if not colon or not expression.strip():
            raise ValueError(f"keyframe {part!r} in --curve {text!r}: expected <time>:<expression>, e.g. 1.5s:happy")
        times.append(parse_time(time_text))
        aus.append(action_units.parse_expression(expression))
    if np.any(np.diff(times) <= 0):
        raise ValueError(f"keyframe times in --curve {text!r} must increase, got {times}")
    return AUCurve(np.asarray(times), np.stack(aus), "smooth")


def read_csv(path: os.PathLike) -> AUCurve:
    """An AU track file (OpenFace FeatureExtraction's CSV, or write_csv's) -> a linear AUCurve.

    Raises:
        FileNotFoundError: no such file.
        ValueError: no time or AU column (the message lists the missing ones), a value that is not a
            number (with its line), no row with a face, or times that do not increase.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"AU track {os.fspath(path)!r} does not exist")
    rows = list(csv.reader(io.StringIO(path.read_text(errors="replace"))))
    if not rows:
        raise ValueError(f"AU track {os.fspath(path)!r} is empty: expected a CSV header with timestamp and "
                         f"{AU_COLUMNS[0]} .. {AU_COLUMNS[-1]}")
    header = [name.strip() for name in rows[0]]  # OpenFace writes ", timestamp, ..."
    time_column = next((header.index(name) for name in TIME_COLUMNS if name in header), None)
    missing = [name for name in AU_COLUMNS if name not in header]
    if time_column is None or missing:
        wanted = ([] if time_column is not None else ["timestamp (or time)"]) + missing
        raise ValueError(f"AU track {os.fspath(path)!r} lacks the columns {', '.join(wanted)}: expected OpenFace's "
                         "FeatureExtraction CSV (timestamp, AU01_r .. AU45_r on its 0..5 scale)")
    au_columns = [header.index(name) for name in AU_COLUMNS]
    success_column = header.index("success") if "success" in header else None
    times, aus = [], []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            if success_column is not None and float(row[success_column]) == 0:
                continue
            times.append(float(row[time_column]))
            aus.append([float(row[column]) for column in au_columns])
        except (ValueError, IndexError):
            raise ValueError(f"AU track {os.fspath(path)!r}, line {line}: a value is missing or not a number") from None
    if not times:
        raise ValueError(f"AU track {os.fspath(path)!r} has no row with a face (every success is 0, or no rows)")
    times = np.asarray(times)
    if np.any(np.diff(times) <= 0):
        line = int(np.argmax(np.diff(times) <= 0)) + 3
        raise ValueError(f"AU track {os.fspath(path)!r}: times must increase (line {line} does not)")
    return AUCurve(times, action_units.normalize_intensities(np.asarray(aus)), "linear")


def write_csv(path: os.PathLike, times, aus, success=None) -> pathlib.Path:
    """Writes an AU track (atomically): `frame, timestamp, success, AU01_r .. AU45_r` on the 0..5 scale.

    Args:
        times: float [N] seconds; aus: float [N, 17] in [0, 1]; success: bool [N], frames where a face
            was seen (default all); read_csv skips the others.
    """
    times = np.asarray(times, np.float64).reshape(-1)
    aus = np.asarray(aus, np.float32)
    success = np.ones(times.size, bool) if success is None else np.asarray(success, bool)
    if aus.shape != (times.size, action_units.NUM_AUS) or success.shape != times.shape:
        raise ValueError(f"an AU track of {times.size} times needs AUs [{times.size}, {action_units.NUM_AUS}] and "
                         f"success [{times.size}], got {list(aus.shape)} and {list(success.shape)}")
    lines = [",".join(("frame", "timestamp", "success") + AU_COLUMNS)]
    raw = aus * action_units.MAX_RAW_INTENSITY
    for index, (time, ok, values) in enumerate(zip(times, success, raw)):
        lines.append(",".join([str(index), f"{time:.4f}", str(int(ok))] + [f"{value:.3f}" for value in values]))
    return atomic.write_text(path, "\n".join(lines) + "\n")


def smooth(times, values, sigma_s: float) -> np.ndarray:
    """A track (AUs, or any float [N, D] at increasing times [N]) smoothed over time: float32 [N, D].

    Each sample becomes the value at its time of a straight line fitted by least squares to the samples
    within 3 sigma_s, weighted by exp(-dt^2 / (2 sigma_s^2)) (a local linear regression). Unlike a plain
    weighted average, this follows a steady motion exactly, also at the ends of the track, where a
    centred average lags; uneven spacing needs no special case. sigma_s = 0 returns the track. The result
    may leave the input's range by a little near a sharp turn: clip AUs to [0, 1] after it.
    """
    times = np.asarray(times, np.float64).reshape(-1)
    values = np.asarray(values, np.float64)
    if not (math.isfinite(sigma_s) and sigma_s >= 0):
        raise ValueError(f"sigma_s={sigma_s!r} is invalid: expected a number >= 0")
    if sigma_s == 0 or times.size < 2:
        return values.astype(np.float32)
    smoothed = np.empty_like(values)
    low = np.searchsorted(times, times - 3 * sigma_s, side="left")
    high = np.searchsorted(times, times + 3 * sigma_s, side="right")
    for index in range(times.size):  # a banded sum: memory stays linear in the track's length
        window = slice(low[index], high[index])
        offsets = times[window] - times[index]
        weights = np.exp(-0.5 * (offsets / sigma_s) ** 2)
        s0, s1, s2 = weights.sum(), (weights * offsets).sum(), (weights * offsets**2).sum()
        mean = weights @ values[window]
        slope_term = (weights * offsets) @ values[window]
        determinant = s0 * s2 - s1 * s1
        if determinant <= 1e-12 * max(s0 * s2, 1e-300):  # one sample in the window: its value
            smoothed[index] = mean / s0
        else:
            smoothed[index] = (s2 * mean - s1 * slope_term) / determinant
    return smoothed.astype(np.float32)
