"""TF Serving's gRPC API, from the client side: PredictionService and ModelService with the official stubs.

Each call has a deadline (timeout_s) and is retried with exponential backoff on UNAVAILABLE (a server
that is starting or restarting). Messages may be up to 256 MiB each way: gRPC's default of 4 MiB fails
at batch 16 of 128-px float images (7.3 MB of outputs).
"""

from __future__ import annotations

import grpc

from serving.client.serving_client import DEFAULT_MODEL_NAME, DEFAULT_SIGNATURE, ServingClient
from serving.status import ServingError

DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024


class GrpcClient(ServingClient):
    """TF Serving's PredictionService and ModelService over gRPC.

    Args:
        target: "host:port" of the gRPC API.
        max_message_bytes: the largest message sent or received.
        (the rest as ServingClient)
    """

    def __init__(self, target: str, model_name: str = DEFAULT_MODEL_NAME, version: int | None = None,
                 timeout_s: float = 30.0, retries: int = 3, backoff_s: float = 0.5,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES):
        super().__init__(model_name, version, timeout_s, retries, backoff_s)
        from tensorflow_serving.apis import (  # noqa: PLC0415
            model_service_pb2_grpc,
            prediction_service_pb2_grpc,
        )

        self.target = target
        self._channel = grpc.insecure_channel(target, options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes)])
        self._prediction = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def predict(self, inputs, signature_name=DEFAULT_SIGNATURE, output_filter=()):
        import tensorflow as tf  # noqa: PLC0415 (the protos import it anyway)
        from tensorflow_serving.apis import predict_pb2  # noqa: PLC0415

        request = predict_pb2.PredictRequest()
        self._fill_spec(request.model_spec, signature_name)
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        request.output_filter.extend(output_filter)
        response = self._call(self._prediction.Predict, request)
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def metadata(self):
        from tensorflow_serving.apis import get_model_metadata_pb2  # noqa: PLC0415

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._fill_spec(request.model_spec, "")
        response = self._call(self._prediction.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return signature_map

    def status(self):
        from tensorflow_serving.apis import get_model_status_pb2  # noqa: PLC0415

        request = get_model_status_pb2.GetModelStatusRequest()
        self._fill_spec(request.model_spec, "")
        return self._call(self._models.GetModelStatus, request)

    def close(self) -> None:
        self._channel.close()

    def _fill_spec(self, model_spec, signature_name: str) -> None:
        model_spec.name = self.model_name
        if self.version is not None:
            model_spec.version.value = self.version
        if signature_name:
            model_spec.signature_name = signature_name

    def _call(self, method, request):
        def once():
            try:
                return method(request, timeout=self.timeout_s)
            except grpc.RpcError as error:
                raise ServingError(error.code(), error.details() or str(error)) from None

        return self._with_retries(once)

