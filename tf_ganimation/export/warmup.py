"""TF Serving's warmup records: the Predict requests a server replays when it loads a model version.

    warmup.write_prediction_logs(version / "assets.extra" / "tf_serving_warmup_requests",
                                 {"serving_default": {"images": images, "aus": aus}})

TF Serving reads `<version>/assets.extra/tf_serving_warmup_requests` (a TFRecord of PredictionLog protos)
before it marks the version available, so the first client request does not pay for tracing and
allocation. saved_model.py chooses the requests, one per signature; this module only writes them.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import tensorflow as tf


def write_prediction_logs(path: os.PathLike, requests: dict[str, dict[str, np.ndarray]],
                          model_name: str = "ganimation") -> pathlib.Path:
    """Writes one PredictLog per signature to `path` (a TFRecord), in the order of `requests`.

    Args:
        path: the file to write; its folder is created.
        requests: {signature name: {input name: array}}, e.g. {"describe_aus": {"aus": float32 [1, 17]}}.
        model_name: the ModelSpec name of every request (TF Serving's --model_name).
    """
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2  # noqa: PLC0415 (optional)

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature_name, inputs in requests.items():
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name))
            for name, value in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path
