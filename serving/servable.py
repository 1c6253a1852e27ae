"""One loaded version of a SavedModel: its signature defs, checked runs, and the warmup replay.

`Servable.run` checks a request against the signature def the way TF Serving does (input names, dtypes,
shapes, output filter) and turns every failure into a `ServingError` that names the input and what was
expected, so a bad request is answered with INVALID_ARGUMENT and never reaches the graph half-checked.
"""

from __future__ import annotations

import logging
import pathlib
from collections.abc import Iterable, Mapping

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from serving.status import ServingError, from_tf_error

DEFAULT_SIGNATURE = "serving_default"
WARMUP_FILE = pathlib.Path("assets.extra") / "tf_serving_warmup_requests"
# TF Serving replays at most this many warmup records.
MAX_WARMUP_RECORDS = 1000

logger = logging.getLogger(__name__)


class Servable:
    """A SavedModel version loaded with tf.saved_model.load, ready to run its signatures.

    Args:
        name: the model name requests use.
        version: the version number (the folder's name).
        path: the version folder.
    """

    def __init__(self, name: str, version: int, path: pathlib.Path):
        self.name = name
        self.version = version
        self.path = pathlib.Path(path)
        self.signature_defs = _read_signature_defs(self.path)
        self._model = tf.saved_model.load(str(self.path))
        self._functions = dict(self._model.signatures)

    @property
    def signature_names(self) -> list[str]:
        return sorted(self._functions)

    def signature_def(self, signature_name: str) -> meta_graph_pb2.SignatureDef:
        """The SignatureDef of `signature_name` ("" is serving_default); INVALID_ARGUMENT if unknown."""
        signature_name = signature_name or DEFAULT_SIGNATURE
        if signature_name not in self._functions:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f'Serving signature name: "{signature_name}" not found in signature def; '
                               f"model {self.name} version {self.version} has: {', '.join(self.signature_names)}")
        return self.signature_defs[signature_name]

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray], output_filter: Iterable[str] = ()
            ) -> dict[str, np.ndarray]:
        """Runs one signature on numpy inputs (strings as object arrays of bytes); outputs sorted by name."""
        signature_name = signature_name or DEFAULT_SIGNATURE
        signature = self.signature_def(signature_name)
        tensors = {name: _checked_input(signature_name, name, signature.inputs[name], value)
                   for name, value in _matched_inputs(signature_name, signature, inputs).items()}
        wanted = list(output_filter) or sorted(signature.outputs)
        unknown = sorted(set(wanted) - set(signature.outputs))
        if unknown:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"output tensor alias not found in signature: {', '.join(unknown)}; outputs of "
                               f"'{signature_name}' are {{{', '.join(sorted(signature.outputs))}}}")
        try:
            outputs = self._functions[signature_name](**tensors)
        except tf.errors.OpError as error:
            raise from_tf_error(error) from None
        except (TypeError, ValueError) as error:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"signature '{signature_name}': {error}") from None
        return {name: outputs[name].numpy() for name in sorted(wanted)}

    def warm_up(self) -> int:
        """Replays `assets.extra/tf_serving_warmup_requests` (PredictionLog records); returns their count.

        Raises:
            ServingError: a warmup request failed (TF Serving fails the load then too).
        """
        from tensorflow_serving.apis import (
            prediction_log_pb2,  # noqa: PLC0415 (heavy, only when loading)
        )

        path = self.path / WARMUP_FILE
        if not path.is_file():
            return 0
        count = 0
        for record in tf.data.TFRecordDataset(str(path)).take(MAX_WARMUP_RECORDS):
            log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            if log.WhichOneof("log_type") != "predict_log":
                raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                                   f"warmup record {count} of {path} is a {log.WhichOneof('log_type')}; "
                                   "the local server replays predict_log records only")
            request = log.predict_log.request
            inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
            self.run(request.model_spec.signature_name, inputs, request.output_filter)
            count += 1
        return count


def _read_signature_defs(path: pathlib.Path) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The serving MetaGraph's signature defs, exactly as GetModelMetadata returns them."""
    saved_model_file = path / "saved_model.pb"
    if not saved_model_file.is_file():
        raise FileNotFoundError(f"{saved_model_file} not found: {path} is not a SavedModel folder")
    saved_model = saved_model_pb2.SavedModel.FromString(saved_model_file.read_bytes())
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ValueError(f"{saved_model_file} has no MetaGraph tagged 'serve'")


def _matched_inputs(signature_name, signature, inputs: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
    expected, sent = set(signature.inputs), set(inputs)
    if expected != sent:
        missing, extra = sorted(expected - sent), sorted(sent - expected)
        problems = [f"missing {', '.join(missing)}"] if missing else []
        problems += [f"unexpected {', '.join(extra)}"] if extra else []
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"input size does not match signature '{signature_name}': {'; '.join(problems)} "
                           f"(it takes exactly {', '.join(sorted(expected))})")
    return inputs


def dtype_of(value: np.ndarray) -> tf.DType:
    """The TensorFlow dtype of a numpy array; bytes, str and object arrays are tf.string."""
    if value.dtype.kind in "OSU":
        return tf.string
    return tf.as_dtype(value.dtype)


def shape_text(dims) -> str:
    return "[" + ", ".join(str(size) for size in dims) + "]"


def _checked_input(signature_name: str, name: str, info: meta_graph_pb2.TensorInfo, value: np.ndarray):
    expected_dtype = tf.as_dtype(info.dtype)
    value = np.asarray(value)
    actual_dtype = dtype_of(value)
    if actual_dtype != expected_dtype:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"input '{name}' of signature '{signature_name}' must be {expected_dtype.name}, "
                           f"got {actual_dtype.name}")
    if not info.tensor_shape.unknown_rank:
        expected = [dim.size for dim in info.tensor_shape.dim]
        if len(expected) != value.ndim or any(size not in (-1, actual) for size, actual in zip(expected, value.shape)):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"input '{name}' of signature '{signature_name}' has shape {shape_text(value.shape)}; "
                               f"the signature expects {shape_text(expected)} (-1: any size)")
    if expected_dtype == tf.string:
        return tf.constant(value.astype(object), tf.string)
    return tf.constant(value, expected_dtype)
