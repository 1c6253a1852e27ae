"""serving/rest_json.py: tensors <-> TF Serving's REST JSON, the conversion the REST server and client share."""

import base64
import json
import os
import subprocess
import sys

import grpc
import numpy as np
import pytest
import tensorflow as tf

from serving import rest_json
from serving.status import ServingError

from conftest import PROJECT_ROOT

WHERE = "'aus' of 'inputs'"


def test_map_nested_keeps_the_nesting():
    assert rest_json.map_nested([[1, 2], [3]], lambda item: item * 10) == [[10, 20], [30]]
    assert rest_json.map_nested(4, str) == "4"


def test_is_b64_is_an_object_with_one_b64_text():
    assert rest_json.is_b64({"b64": "AAEC"})
    assert not rest_json.is_b64({"b64": "AAEC", "other": 1})
    assert not rest_json.is_b64({"b64": 12})
    assert not rest_json.is_b64("AAEC")


def test_json_value_of_numbers_is_nested_lists():
    assert rest_json.json_value(np.array([[0.5, 1.0]], np.float32), binary=False) == [[0.5, 1.0]]
    assert rest_json.json_value(np.array(3, np.int32), binary=True) == 3
    assert rest_json.json_value([1, 2], binary=False) == [1, 2]


def test_json_value_of_strings_is_b64_or_text():
    strings = np.array([[b"\x00\x01", b"png"]], dtype=object)
    assert rest_json.json_value(strings, binary=True) == [[{"b64": "AAE="}, {"b64": "cG5n"}]]
    assert rest_json.json_value(np.array([b"AU12", b"\xff"], dtype=object), binary=False) == ["AU12", "\ufffd"]
    assert rest_json.json_value(np.array(["text"]), binary=True) == ["text"]  # str is sent as it is


@pytest.mark.parametrize("dtype, value", [(tf.float32, [[0.25, 1.0], [8, 0]]), (tf.int32, [3, -7]),
                                          (tf.uint8, [[0, 255]])])
def test_array_round_trips_numbers_with_their_dtype(dtype, value):
    array = rest_json.array(value, dtype, WHERE)
    assert array.dtype == dtype.as_numpy_dtype and array.tolist() == value
    assert json.loads(json.dumps(rest_json.json_value(array, binary=False))) == value


def test_array_round_trips_bytes_through_b64():
    data = np.array([bytes(range(256)), b""], dtype=object)
    sent = json.loads(json.dumps(rest_json.json_value(data, binary=True)))
    assert list(rest_json.array(sent, tf.string, WHERE)) == list(data)


def test_array_takes_text_and_unpadded_b64_for_strings():
    array = rest_json.array(["AU12", {"b64": base64.b64encode(b"ab").decode().rstrip("=")}], tf.string, WHERE)
    assert array.dtype == object and list(array) == [b"AU12", b"ab"]


BAD_VALUES = {
    "ragged numbers": ([[0.5, 0.5], [0.5]], tf.float32, f"the lists of {WHERE} have different lengths"),
    "booleans for floats": ([True, False], tf.float32,
                            f"JSON value of {WHERE} is not of expected type: float32 (got booleans)"),
    "text for floats": ([["high"]], tf.float32, "is not of expected type: float32 (got strings)"),
    "decimals for ints": ([8.5], tf.int32, "is not of expected type: int32 (got decimal numbers)"),
    "int out of range": ([2**31], tf.int32, f"a value of {WHERE} does not fit int32"),
    "bad base64": ([{"b64": "@@not base64@@"}], tf.string, f"Unable to base64 decode {WHERE}: '@@not base64@@'"),
    "number for string": ([1], tf.string, f"JSON value of {WHERE} is not of expected type: string"),
    "ragged strings": ([["a"], ["b", "c"]], tf.string, f"the lists of {WHERE} have different lengths"),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_array_rejects_bad_values_naming_the_tensor(case):
    value, dtype, message = BAD_VALUES[case]
    with pytest.raises(ServingError) as raised:
        rest_json.array(value, dtype, WHERE)
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.message


def test_an_empty_list_is_an_empty_tensor_of_the_dtype():
    assert rest_json.array([], tf.int32, WHERE).dtype == np.int32


def test_the_module_does_not_import_tensorflow():
    # The client's command line imports it before it parses its flags.
    code = "import sys, serving.rest_json; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
