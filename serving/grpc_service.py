"""TF Serving's gRPC services over a ModelManager, with the official protos and servicer base classes.

PredictionService: Predict and GetModelMetadata (Classify, Regress and MultiInference answer UNIMPLEMENTED,
the servicer base class's default). ModelService: GetModelStatus (HandleReloadConfigRequest: UNIMPLEMENTED).
"""

from __future__ import annotations

import concurrent.futures
import logging

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.manager import ModelManager
from serving.status import ServingError

logger = logging.getLogger(__name__)
SIGNATURE_DEF_FIELD = "signature_def"


def requested_version(model_spec: model_pb2.ModelSpec) -> int | None:
    return model_spec.version.value if model_spec.HasField("version") else None


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata, answered from the manager's current servable."""

    def __init__(self, manager: ModelManager):
        self._manager = manager

    def Predict(self, request: predict_pb2.PredictRequest, context) -> predict_pb2.PredictResponse:
        return _answer(context, self._predict, request)

    def _predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        spec = request.model_spec
        servable = self._manager.servable(spec.name, requested_version(spec), spec.version_label)
        inputs = {}
        for name, proto in request.inputs.items():
            try:
                inputs[name] = tf.make_ndarray(proto)
            except (TypeError, ValueError) as error:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input '{name}' is not a valid TensorProto: {error}") from None
        signature_name = spec.signature_name or "serving_default"
        outputs = self._manager.run(servable, signature_name, inputs, request.output_filter)
        response = predict_pb2.PredictResponse()
        _fill_model_spec(response.model_spec, servable, signature_name)
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response

    def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest, context
                         ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        return _answer(context, self._metadata, request)

    def _metadata(self, request):
        fields = list(request.metadata_field)
        if not fields:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               "GetModelMetadataRequest must specify at least one metadata_field")
        unsupported = [field for field in fields if field != SIGNATURE_DEF_FIELD]
        if unsupported:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"Metadata field {unsupported[0]} is not supported (only '{SIGNATURE_DEF_FIELD}')")
        spec = request.model_spec
        servable = self._manager.servable(spec.name, requested_version(spec), spec.version_label)
        return metadata_response(servable)


def metadata_response(servable) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """GetModelMetadataResponse: model spec and the SavedModel's signature defs (a SignatureDefMap in an Any)."""
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    _fill_model_spec(response.model_spec, servable, "")
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for name, signature in servable.signature_defs.items():
        signature_map.signature_def[name].CopyFrom(signature)
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
    return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus: the versions the manager has seen and their states."""

    def __init__(self, manager: ModelManager):
        self._manager = manager

    def GetModelStatus(self, request: get_model_status_pb2.GetModelStatusRequest, context
                       ) -> get_model_status_pb2.GetModelStatusResponse:
        return _answer(context, lambda req: status_response(self._manager, req.model_spec), request)


def status_response(manager: ModelManager, model_spec: model_pb2.ModelSpec
                    ) -> get_model_status_pb2.GetModelStatusResponse:
    response = get_model_status_pb2.GetModelStatusResponse()
    for status in manager.status(model_spec.name, requested_version(model_spec)):
        entry = response.model_version_status.add()
        entry.version = status.version
        entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(status.state)
        entry.status.error_code = status.error_code.value[0]
        entry.status.error_message = status.error_message
    return response


def make_grpc_server(manager: ModelManager, host: str, port: int, max_request_bytes: int,
                     max_workers: int = 16, max_queued_requests: int = 64) -> tuple[grpc.Server, int]:
    """A started-ready (not started) gRPC server with both services; returns it and the bound port.

    Requests larger than max_request_bytes get RESOURCE_EXHAUSTED; so do RPCs beyond max_queued_requests
    in flight. Responses may be as large as they need (an animation of 64 frames at 128 px is 12 MB).
    """
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        maximum_concurrent_rpcs=max_queued_requests,
        options=[("grpc.max_receive_message_length", max_request_bytes),
                 ("grpc.max_send_message_length", -1),
                 ("grpc.so_reuseport", 0)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(manager), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(manager), server)
    try:
        bound_port = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:  # recent grpcio raises where older versions returned 0
        bound_port = 0
    if bound_port == 0:
        raise OSError(f"cannot bind the gRPC port {host}:{port} (in use?)")
    return server, bound_port


def _fill_model_spec(model_spec: model_pb2.ModelSpec, servable, signature_name: str) -> None:
    model_spec.name = servable.name
    model_spec.version.value = servable.version
    model_spec.signature_name = signature_name


def _answer(context, handler, request):
    try:
        return handler(request)
    except ServingError as error:
        context.abort(error.code, error.message)
    except Exception as error:  # a bug, not a bad request: log it, answer INTERNAL
        logger.exception("request failed")
        context.abort(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")
