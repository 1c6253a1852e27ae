"""Tests for tf_ganimation/annotations.py: the restricted unpickler, OpenFace CSVs, id lists."""

import collections
import os
import pickle
import struct

import numpy as np
import pytest

from tf_ganimation.core import action_units
from tf_ganimation.data import annotations


def python2_pickle(table: dict[str, np.ndarray]) -> bytes:
    """Opcodes as Python 2.7 + numpy 1 write `pickle.dump(table, f, protocol=2)` for float64 arrays.

    Keys and array buffers are Python 2 `str` (SHORT_BINSTRING / BINSTRING), which Python 3 can only
    read with encoding="latin1"; globals name `numpy.core.multiarray`.
    """

    def binstring(data: bytes) -> bytes:
        return (b"U" + bytes([len(data)]) + data) if len(data) < 256 else (b"T" + struct.pack("<i", len(data)) + data)

    out = [b"\x80\x02", b"}", b"("]
    for key, value in table.items():
        value = np.ascontiguousarray(value, "<f8")
        out += [binstring(key.encode("latin1")),
                b"cnumpy.core.multiarray\n_reconstruct\n", b"cnumpy\nndarray\n",
                b"K\x00\x85", binstring(b"b"), b"\x87R",
                b"(K\x01", b"K" + bytes([value.size]) + b"\x85",
                b"cnumpy\ndtype\n", binstring(b"f8"), b"K\x00K\x01\x87R",
                b"(K\x03", binstring(b"<"), b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb",
                b"\x89", binstring(value.tobytes()), b"tb"]
    out += [b"u", b"."]
    return b"".join(out)


def test_python2_pickle_needs_latin1_and_loads(tmp_path):
    raw = {"face_a.jpg": np.linspace(0.0, 5.0, 17), "face_b": np.full(17, 2.5)}
    data = python2_pickle(raw)
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(data)  # Python 3's default ASCII cannot read the Python 2 buffers
    path = tmp_path / "aus_openface.pkl"
    path.write_bytes(data)
    table = annotations.load_aus_pickle(str(path))
    assert list(table) == ["face_a", "face_b"]  # the extension is dropped from ids
    np.testing.assert_array_equal(table["face_a"], np.linspace(0.0, 5.0, 17))
    np.testing.assert_array_equal(table["face_b"], np.full(17, 2.5))


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_python3_pickles_of_numpy_load_at_every_protocol(tmp_path, protocol):
    table = collections.OrderedDict(
        a=np.arange(17, dtype=np.float32) / 4, b=[float(i) / 4 for i in range(17)], c=np.float32(1.5),
        d=np.zeros((1, 17)), e=(b"", b"xy"))
    path = tmp_path / "aus.pkl"
    path.write_bytes(pickle.dumps(table, protocol=protocol))
    loaded = annotations.load_aus_pickle(str(path))
    np.testing.assert_array_equal(loaded["a"], table["a"])
    assert loaded["a"].dtype == np.float32
    assert loaded["b"] == table["b"]
    assert loaded["c"] == np.float32(1.5)
    assert loaded["d"].shape == (1, 17)
    assert loaded["e"] == (b"", b"xy")


def test_bytes_keys_are_decoded(tmp_path):
    path = tmp_path / "aus.pkl"
    path.write_bytes(pickle.dumps({b"face_1.png": np.ones(17), "caf\u00e9".encode("utf-8"): np.ones(17)}, protocol=2))
    assert sorted(annotations.load_aus_pickle(str(path))) == ["caf\u00e9", "face_1"]


class _RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_pickle_that_would_run_a_command_is_refused_and_nothing_runs(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "aus_openface.pkl"
    path.write_bytes(pickle.dumps({"face": _RunsCommand(marker)}, protocol=protocol))
    with pytest.raises(annotations.UnsafePickleError) as error:
        annotations.load_aus_pickle(str(path))
    assert str(path) in str(error.value)
    assert "system" in str(error.value)
    assert not marker.exists()
    assert isinstance(error.value, ValueError)


@pytest.mark.parametrize("payload", [
    b"\x80\x02cbuiltins\neval\nX\x04\x00\x00\x001+1\x85R.",
    b"\x80\x02csubprocess\nPopen\n.",
    b"\x80\x02cnumpy\nload\n.",
    b"\x80\x02c_codecs\nencode\nX\x02\x00\x00\x00abX\x03\x00\x00\x00hex\x86R.",  # not latin1
    b"\x80\x02c__builtin__\nbytes\nJ\x00\x00\x00\x10\x85R.",  # bytes(2**28): allocation
])
def test_other_globals_are_refused(tmp_path, payload):
    path = tmp_path / "evil.pkl"
    path.write_bytes(payload)
    with pytest.raises(ValueError):
        annotations.load_aus_pickle(str(path))


def test_malformed_pickles_raise_annotation_error(tmp_path):
    not_a_dict = tmp_path / "list.pkl"
    not_a_dict.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(annotations.AnnotationError, match="holds a list"):
        annotations.load_aus_pickle(str(not_a_dict))
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"this is not a pickle")
    with pytest.raises(annotations.AnnotationError, match="garbage.pkl"):
        annotations.load_aus_pickle(str(garbage))


# OpenFace FaceLandmarkImg style: "name, name" headers, extra columns, `_r` and `_c` columns
# (AU28 has only `_c`). The `_r` columns are written in reverse order to prove they are read by name.
_R_NAMES = list(reversed(action_units.AU_NAMES))
_C_NAMES = ["AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12", "AU14", "AU15",
            "AU17", "AU20", "AU23", "AU25", "AU26", "AU28", "AU45"]
_HEADER = ", ".join(["face", "confidence", "gaze_0_x", "pose_Tx"] + [f"{n}_r" for n in _R_NAMES]
                    + [f"{n}_c" for n in _C_NAMES])


def _row(face, confidence, intensities):
    cells = [str(face), f"{confidence}"]
    cells += ["0.1", "12.5"] + [f"{intensities.get(n, 0.0):.2f}" for n in _R_NAMES] + ["1"] * len(_C_NAMES)
    return ", ".join(cells)


def test_openface_csv_takes_the_most_confident_face(tmp_path):
    path = tmp_path / "face.csv"
    path.write_text("\n".join([_HEADER, _row(0, 0.75, {"AU12": 1.5}), _row(1, 0.98, {"AU12": 4.0, "AU45": 2.0}),
                               _row(2, 0.40, {"AU01": 5.0})]) + "\n")
    raw, reason = annotations.read_openface_csv(str(path))
    assert reason is None
    expected = np.zeros(17)
    expected[action_units.au_index("AU12")] = 4.0
    expected[action_units.au_index("AU45")] = 2.0
    np.testing.assert_allclose(raw, expected)


def test_openface_feature_extraction_csv_skips_failed_rows(tmp_path):
    header = ", ".join(["frame", "face_id", "timestamp", "confidence", "success"] + [f"{n}_r" for n in _R_NAMES])
    row = lambda confidence, success, value: ", ".join(
        ["1", "0", "0.000", str(confidence), str(success)] + [f"{value:.2f}"] * 17)
    good = tmp_path / "good.csv"
    good.write_text("\n".join([header, row(0.99, 0, 0.0), row(0.9, 1, 3.0)]) + "\n")
    raw, reason = annotations.read_openface_csv(str(good))
    assert reason is None and np.allclose(raw, 3.0)
    failed = tmp_path / "failed.csv"
    failed.write_text("\n".join([header, row(0.0, 0, 0.0)]) + "\n")
    assert annotations.read_openface_csv(str(failed)) == (None, annotations.NO_FACE_IN_AU_FILE)


def test_openface_csv_problems_are_reasons_not_exceptions(tmp_path):
    missing_column = tmp_path / "a.csv"
    missing_column.write_text("face, confidence, AU01_r\n0, 0.9, 1.0\n")
    header_only = tmp_path / "b.csv"
    header_only.write_text(_HEADER + "\n")
    not_numbers = tmp_path / "c.csv"
    not_numbers.write_text(_HEADER + "\n" + _row(0, "high", {}) + "\n")
    binary = tmp_path / "d.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    for path in (missing_column, header_only, not_numbers, binary, tmp_path / "absent.csv"):
        assert annotations.read_openface_csv(str(path)) == (None, annotations.UNREADABLE_AU_FILE), path


def test_read_id_list_strips_extensions_blank_lines_and_duplicates(tmp_path):
    path = tmp_path / "train_ids.csv"
    path.write_text("\ufeffN_001.jpg\nN_002\n\n  N_003.PNG  \nN_001.jpg\nname.with.dots\n")
    assert annotations.read_id_list(str(path)) == ["N_001", "N_002", "N_003", "name.with.dots"]


def test_image_id():
    assert annotations.image_id("imgs/face_1.jpeg") == "face_1"
    assert annotations.image_id("face_1") == "face_1"
    assert annotations.image_id("face.v2") == "face.v2"


@pytest.mark.parametrize("value, reason", [
    (np.full(17, 5.0), None),
    (np.zeros((1, 17)), None),
    (np.zeros(16), annotations.WRONG_AU_COUNT),
    ("abc", annotations.WRONG_AU_COUNT),
    ([0.0] * 16 + [np.nan], annotations.NON_FINITE_AUS),
    ([0.0] * 16 + [np.inf], annotations.NON_FINITE_AUS),
    ([0.0] * 16 + [-0.01], annotations.AUS_OUT_OF_RANGE),
    ([0.0] * 16 + [5.01], annotations.AUS_OUT_OF_RANGE),
])
def test_check_raw_aus(value, reason):
    vector, found = annotations.check_raw_aus(value)
    assert found == reason
    if reason is None:
        assert vector.shape == (17,) and vector.dtype == np.float32
    else:
        assert vector is None
