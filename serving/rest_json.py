"""Tensors in TF Serving's REST JSON: numbers as nested lists, binary strings as {"b64": "..."} objects.

The one conversion both sides of the REST API use: the local server (serving/rest.py) reads request
inputs and writes outputs with it, the REST client (serving/client/rest_client.py) writes inputs and
reads outputs with it, so a tensor survives the round trip with its dtype and bytes unchanged.

Dtypes are `tf.DType`s, but this module does not import TensorFlow (it only reads their `name`,
`is_floating`, `is_integer` and `as_numpy_dtype`), so the client's command line answers `--help`
before TensorFlow loads.
"""

from __future__ import annotations

import base64
import binascii

import grpc
import numpy as np

from serving.status import ServingError


def map_nested(value, function):
    """`function` applied to every leaf of nested lists, the nesting kept."""
    if isinstance(value, list):
        return [map_nested(item, function) for item in value]
    return function(value)


def is_b64(value) -> bool:
    """Whether `value` is a {"b64": "<text>"} object, the REST form of a binary string."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def b64_object(data: bytes) -> dict:
    """bytes -> {"b64": "<standard base64, padded>"}."""
    return {"b64": base64.b64encode(data).decode("ascii")}


def json_value(value, binary: bool):
    """A numpy array (or anything np.asarray takes) -> its JSON value.

    Args:
        value: numbers of any shape, or strings (bytes, str or object arrays of them).
        binary: strings as {"b64": ...} objects; otherwise bytes are decoded as UTF-8 (invalid bytes
            replaced) and str is kept.

    Returns:
        A number or nested lists of the array's shape.
    """
    value = np.asarray(value) if not isinstance(value, np.ndarray) else value
    if value.dtype.kind not in "OSU":
        return value.tolist()
    if binary:
        return map_nested(value.tolist(), lambda item: b64_object(item) if isinstance(item, bytes) else item)
    return map_nested(value.tolist(), lambda item: item.decode("utf-8", "replace") if isinstance(item, bytes) else item)


def array(value, dtype, where: str) -> np.ndarray:
    """A JSON value (a number, nested lists, b64 objects or text) -> numpy array of `dtype`.

    Args:
        value: the parsed JSON value of one tensor.
        dtype: the tf.DType the tensor must have; strings become an object array of bytes.
        where: names the tensor in error messages, e.g. "'aus' of 'inputs'".

    Raises:
        ServingError: INVALID_ARGUMENT, naming `where`, for ragged lists, values of another type
            (booleans, text for numbers, 8.5 for an integer), integers out of the dtype's range, and
            strings that are neither text nor valid base64.
    """
    if dtype.name == "string":
        strings = np.array(_bytes_tree(value, where), dtype=object)
        if any(isinstance(item, list) for item in strings.flat):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"the lists of {where} have different lengths")
        return strings
    try:
        numbers = np.asarray(value)
    except ValueError:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"the lists of {where} have different lengths (a tensor must be rectangular)") from None
    allowed = "iuf" if dtype.is_floating else "iu"  # 8 is a valid float, 8.5 not a valid int (as TF Serving)
    if numbers.size and numbers.dtype.kind not in allowed:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"JSON value of {where} is not of expected type: {dtype.name} (got {_kind(numbers)})")
    if dtype.is_integer and numbers.size:
        limits = np.iinfo(dtype.as_numpy_dtype)
        if numbers.min() < limits.min or numbers.max() > limits.max:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"a value of {where} does not fit {dtype.name}")
    return numbers.astype(dtype.as_numpy_dtype, copy=False)


def _kind(numbers: np.ndarray) -> str:
    return {"b": "booleans", "U": "strings", "S": "strings", "O": "objects or mixed values",
            "f": "decimal numbers"}.get(numbers.dtype.kind, numbers.dtype.name)


def _bytes_tree(value, where: str):
    if isinstance(value, list):
        return [_bytes_tree(item, where) for item in value]
    if is_b64(value):
        text = value["b64"]
        try:
            return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"Unable to base64 decode {where}: {text[:40]!r}") from None
    if isinstance(value, str):
        return value.encode("utf-8")
    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                       f"JSON value of {where} is not of expected type: string (a string or {{\"b64\": ...}})")
