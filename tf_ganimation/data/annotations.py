"""AU annotation tables: the authors' `aus_openface.pkl`, OpenFace CSVs and the split id lists.

Everything here is plain Python + numpy (no TensorFlow) and returns RAW OpenFace intensities on the
0..5 scale in `action_units.AU_NAMES` order; `inventory.py` validates and normalises them
(`action_units.normalize_intensities`).

A pickle can run arbitrary code when loaded, so `load_aus_pickle` never uses `pickle.load`: it uses
`RestrictedUnpickler`, which only rebuilds dicts, lists, tuples, strings, bytes, numbers and numpy
arrays/scalars/dtypes, and refuses every other global with `UnsafePickleError` naming the file.
"""

from __future__ import annotations

import _codecs
import collections
import csv
import io
import math
import os
import pickle

import numpy as np
from numpy._core import multiarray as _multiarray
from numpy._core import numeric as _numeric

from tf_ganimation.core import action_units, image_files

# Reasons an AU vector is unusable; `inventory.py` counts examples under these names.
WRONG_AU_COUNT = "wrong number of AUs"
NON_FINITE_AUS = "non-finite AUs (NaN or Inf)"
AUS_OUT_OF_RANGE = "AUs out of range"
UNREADABLE_AU_FILE = "unreadable AU file"
NO_FACE_IN_AU_FILE = "no face in AU file (OpenFace success=0)"


class UnsafePickleError(ValueError):
    """A pickle references something other than plain data and numpy arrays; nothing was run."""


class AnnotationError(ValueError):
    """An AU table or id list cannot be read as a whole (not a dict, not a CSV, ...)."""


# === Restricted unpickling ===


def _latin1_encode(text, encoding="latin1", errors="strict"):
    # Python 3 writes `bytes` into protocol 0-2 pickles as `_codecs.encode(text, "latin1")`; allow only
    # that codec, so the allowed global cannot be used as a general-purpose codec call.
    if encoding.lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode is only allowed with latin1, got {encoding!r}")
    return _codecs.encode(text, "latin1", errors)


def _empty_bytes(*args):
    # Python 3 writes b"" into protocol 0-2 pickles as `bytes()`; anything longer goes via _codecs.
    if args:
        raise pickle.UnpicklingError("bytes(...) with arguments is not allowed")
    return b""


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "bytes"): _empty_bytes,
    ("__builtin__", "bytes"): _empty_bytes,
    ("_codecs", "encode"): _latin1_encode,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
# numpy 2 pickles name `numpy._core`, numpy 1 (and Python 2) pickles name `numpy.core`; both map to the
# same functions, so loading never imports numpy's deprecated `numpy.core` shim.
for _package in ("numpy._core", "numpy.core"):
    _ALLOWED_GLOBALS[(f"{_package}.multiarray", "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED_GLOBALS[(f"{_package}.multiarray", "scalar")] = _multiarray.scalar
    _ALLOWED_GLOBALS[(f"{_package}.numeric", "_frombuffer")] = _numeric._frombuffer


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that rebuilds plain data and numpy arrays only.

    Allowed: what the pickle opcodes build by themselves (dict, list, tuple, set, str, bytes, int,
    float, bool, None), `collections.OrderedDict`, numpy arrays, scalars and dtypes as numpy 1 and 2
    pickle them (`numpy[._]core.multiarray._reconstruct`/`scalar`, `numpy[._]core.numeric._frombuffer`,
    `numpy.ndarray`, `numpy.dtype`), and the `_codecs.encode(..., "latin1")` / `bytes()` calls that
    Python 3 uses for bytes in protocols 0-2. Any other global raises `UnsafePickleError` before it is
    looked up, so nothing it names is imported or called.

    Args:
        file: a binary file object.
        source: the file name, quoted in errors.
    """

    def __init__(self, file, source: str = "<pickle>"):
        # latin1 is what numpy needs to rebuild arrays from Python 2 `str` buffers; for Python 3
        # pickles it has no effect.
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str):
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise UnsafePickleError(
                f"{self._source} refers to {module}.{name}, which is not plain data: only dicts, lists, "
                "strings, numbers and numpy arrays are loaded from AU pickles (a pickle can run code when "
                "loaded, so nothing else is allowed). Re-save the AU table as a dict of id -> list or "
                "numpy array of 17 OpenFace intensities.")
        return allowed

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self._source} uses persistent ids, which AU pickles never need")


def restricted_loads(data: bytes, source: str = "<pickle>"):
    """Unpickles bytes with `RestrictedUnpickler` (see there for what is allowed)."""
    return RestrictedUnpickler(io.BytesIO(data), source).load()


def load_aus_pickle(path: str) -> dict[str, object]:
    """Reads the authors' AU table: a pickled dict id -> 17 raw OpenFace intensities.

    Handles Python 2 pickles (protocol 2, numpy arrays, `str` keys) and Python 3 ones; bytes keys are
    decoded as UTF-8. Keys are turned into ids with `image_id` (the image extension is dropped).
    Values are returned as found; `check_raw_aus` validates them.

    Args:
        path: the .pkl file.

    Returns:
        {id: value}, in the pickle's order.

    Raises:
        UnsafePickleError: the pickle names anything but plain data / numpy (nothing is run).
        AnnotationError: the file is not a pickle or does not hold a dict.
    """
    with open(path, "rb") as file:
        data = file.read()
    try:
        table = restricted_loads(data, path)
    except UnsafePickleError:
        raise
    except Exception as error:  # any unpickling failure: truncated, not a pickle, bad numpy state
        raise AnnotationError(f"cannot read AU pickle {path}: {type(error).__name__}: {error}") from None
    if not isinstance(table, dict):
        raise AnnotationError(f"AU pickle {path} holds a {type(table).__name__}, expected a dict id -> 17 AUs")
    return {image_id(_text(key)): value for key, value in table.items()}


def _text(key) -> str:
    if isinstance(key, bytes):
        try:
            return key.decode("utf-8")
        except UnicodeDecodeError:
            return key.decode("latin1")
    if isinstance(key, str):
        # A Python 2 `str` key arrives latin1-decoded; undo that if it was really UTF-8.
        try:
            return key.encode("latin1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return key
    return str(key)


# === Ids and split lists ===


def image_id(name: str) -> str:
    """The id of an image: its file name without folder and without a .jpg/.jpeg/.png extension."""
    name = os.path.basename(name.strip())
    stem, extension = os.path.splitext(name)
    return stem if extension.lower() in image_files.TRAINING_IMAGE_EXTENSIONS else name


def read_id_list(path: str) -> list[str]:
    """Reads `train_ids.csv` / `test_ids.csv`: one file name per line, extension optional.

    Blank lines are skipped; if a line has commas only its first field is used; duplicates are dropped.

    Returns:
        The ids (see `image_id`) in file order.
    """
    ids: dict[str, None] = {}
    with open(path, encoding="utf-8-sig") as file:
        for line in file:
            name = line.split(",")[0].strip()
            if name:
                ids[image_id(name)] = None
    return list(ids)


# === AU vectors ===


def check_raw_aus(value, max_value: float = action_units.MAX_RAW_INTENSITY) -> tuple[np.ndarray | None, str | None]:
    """Validates one AU vector as found in a table.

    Args:
        value: anything array-like holding NUM_AUS numbers (any shape with that many elements).
        max_value: the largest allowed value (5 for raw OpenFace intensities, 1 for normalised ones).

    Returns:
        (float32 [NUM_AUS] as given, None) when usable, else (None, reason) with reason one of
        WRONG_AU_COUNT, NON_FINITE_AUS, AUS_OUT_OF_RANGE.
    """
    try:
        vector = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None, WRONG_AU_COUNT
    if vector.size != action_units.NUM_AUS:
        return None, WRONG_AU_COUNT
    if not np.all(np.isfinite(vector)):
        return None, NON_FINITE_AUS
    if vector.min() < 0.0 or vector.max() > max_value:
        return None, AUS_OUT_OF_RANGE
    return vector.astype(np.float32), None


# === OpenFace CSV output ===


def read_openface_csv(path: str) -> tuple[np.ndarray | None, str | None]:
    """Reads the AU intensities of the most confident face in one OpenFace CSV.

    Works with FaceLandmarkImg (one row per face) and FeatureExtraction (one row per frame/face)
    output: the header is matched by name after stripping spaces (OpenFace writes `frame, face_id, ...`
    with a space after each comma), the intensity columns `AU01_r` ... `AU45_r` are read in
    `action_units.AU_NAMES` order and the presence columns `AU.._c` are ignored. Rows with
    `success` 0 (no face tracked; OpenFace writes zeros there) are dropped; of the rest the row with the
    highest `confidence` wins (the first row if there is no confidence column).

    Args:
        path: the .csv file.

    Returns:
        (raw intensities, None) with float64 [NUM_AUS] in OpenFace's 0..5 scale (not yet validated, see
        `check_raw_aus`), or (None, UNREADABLE_AU_FILE / NO_FACE_IN_AU_FILE) when no row can be used.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            rows = list(csv.reader(file))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None, UNREADABLE_AU_FILE
    if len(rows) < 2:
        return None, UNREADABLE_AU_FILE
    header = {name.strip(): index for index, name in enumerate(rows[0])}
    columns = [header.get(f"{name}_r") for name in action_units.AU_NAMES]
    if None in columns:
        return None, UNREADABLE_AU_FILE
    success_column = header.get("success")
    confidence_column = header.get("confidence")
    best, best_confidence = None, -math.inf
    for row in rows[1:]:
        if not any(cell.strip() for cell in row):
            continue
        try:
            if success_column is not None and float(row[success_column]) == 0.0:
                continue
            confidence = float(row[confidence_column]) if confidence_column is not None else 0.0
            intensities = np.array([float(row[column]) for column in columns], np.float64)
        except (IndexError, ValueError):
            return None, UNREADABLE_AU_FILE
        if best is None or confidence > best_confidence:
            best, best_confidence = intensities, confidence
    if best is None:
        return None, NO_FACE_IN_AU_FILE
    return best, None
