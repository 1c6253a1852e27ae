"""serving/grpc_service.py: PredictionService and ModelService over a ModelManager, through the official stubs.

The gRPC server alone (make_grpc_server, no REST) runs in-process on a free port of 127.0.0.1.
"""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving import grpc_service
from serving.manager import ModelManager
from tf_ganimation.export import saved_model

from conftest import expected_images, random_inputs, tiny_generator

SIZE = 32
MAX_REQUEST_BYTES = 2 * 1024 * 1024




@pytest.fixture(scope="module")
def served(tmp_path_factory):
    generator = tiny_generator(seed=0)
    base = tmp_path_factory.mktemp("models") / "ganimation"
    saved_model.export_generator(generator, base)
    manager = ModelManager("ganimation", base).start()
    server, port = grpc_service.make_grpc_server(manager, "127.0.0.1", 0, MAX_REQUEST_BYTES)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", -1),
                                                                  ("grpc.max_send_message_length", -1)])
    yield {"generator": generator, "manager": manager, "port": port,
           "prediction": prediction_service_pb2_grpc.PredictionServiceStub(channel),
           "models": model_service_pb2_grpc.ModelServiceStub(channel)}
    channel.close()
    server.stop(0).wait()
    manager.stop()


def predict_request(inputs, signature_name="serving_default", name="ganimation", version=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


# === Round trips ===

@pytest.mark.parametrize("batch", [1, 8])
def test_grpc_predict_with_the_official_stub(served, batch):
    images, aus = random_inputs(batch, seed=batch)
    response = served["prediction"].Predict(predict_request({"images": images, "aus": aus}), timeout=60)
    assert (response.model_spec.name, response.model_spec.version.value) == ("ganimation", 1)
    assert response.model_spec.signature_name == "serving_default"
    assert sorted(response.outputs) == ["attention", "color", "images"]
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["images"]),
                               expected_images(served["generator"], images, aus), atol=1e-5)
    assert tf.make_ndarray(response.outputs["attention"]).shape == (batch, SIZE, SIZE, 1)


def test_grpc_output_filter_returns_only_what_was_asked(served):
    images, aus = random_inputs(1)
    request = predict_request({"images": images, "aus": aus})
    request.output_filter.append("attention")
    assert list(served["prediction"].Predict(request, timeout=60).outputs) == ["attention"]


def test_an_empty_signature_name_is_serving_default_and_a_pinned_version_is_answered(served):
    images, aus = random_inputs(1)
    response = served["prediction"].Predict(predict_request({"images": images, "aus": aus}, "", version=1),
                                            timeout=60)
    assert (response.model_spec.signature_name, response.model_spec.version.value) == ("serving_default", 1)


def test_metadata_over_grpc(served):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "ganimation"
    response = served["prediction"].GetModelMetadata(request, timeout=60)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    assert set(saved_model.SIGNATURES) <= set(signature_map.signature_def)
    images = signature_map.signature_def["serving_default"].inputs["images"]
    assert [dim.size for dim in images.tensor_shape.dim] == [-1, SIZE, SIZE, 3]
    assert response.model_spec.version.value == 1


def test_model_status_over_grpc(served):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "ganimation"
    response = served["models"].GetModelStatus(request, timeout=60)
    assert [(status.version, status.state, status.status.error_code) for status in response.model_version_status] \
        == [(1, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0)]


def test_status_response_of_a_version(served):
    spec = model_pb2.ModelSpec(name="ganimation")
    spec.version.value = 1
    response = grpc_service.status_response(served["manager"], spec)
    assert [(status.version, status.status.error_message) for status in response.model_version_status] == [(1, "")]


def test_requested_version_is_none_unless_set():
    spec = model_pb2.ModelSpec(name="ganimation")
    assert grpc_service.requested_version(spec) is None
    spec.version.value = 0  # a set version of 0 is still a version
    assert grpc_service.requested_version(spec) == 0


# === Bad requests: a clear error each, and the server keeps serving ===

def good_grpc_request(served):
    images, aus = random_inputs(1)
    response = served["prediction"].Predict(predict_request({"images": images, "aus": aus}), timeout=60)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["images"]),
                               expected_images(served["generator"], images, aus), atol=1e-5)


GOOD_IMAGES, GOOD_AUS = random_inputs(1)
NAN_AUS = GOOD_AUS.copy()
NAN_AUS[0, 2] = np.nan
NOT_A_TENSOR = predict_request({"images": GOOD_IMAGES, "aus": GOOD_AUS})
NOT_A_TENSOR.inputs["aus"].tensor_content = b"abc"  # not a whole number of float32s
BAD_GRPC_REQUESTS = {
    "wrong shape": (predict_request({"images": np.zeros([1, 16, 16, 3], np.float32), "aus": GOOD_AUS}),
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "has shape [1, 16, 16, 3]; the signature expects [-1, 32, 32, 3]"),
    "wrong dtype": (predict_request({"images": GOOD_IMAGES.astype(np.float64), "aus": GOOD_AUS}),
                    grpc.StatusCode.INVALID_ARGUMENT, "input 'images' of signature 'serving_default' must be float32"),
    "16 AUs": (predict_request({"images": GOOD_IMAGES, "aus": GOOD_AUS[:, :16]}),
               grpc.StatusCode.INVALID_ARGUMENT, "the signature expects [-1, 17]"),
    "NaN AUs": (predict_request({"images": GOOD_IMAGES, "aus": NAN_AUS}),
                grpc.StatusCode.INVALID_ARGUMENT, "aus must be finite"),
    "missing input": (predict_request({"images": GOOD_IMAGES}), grpc.StatusCode.INVALID_ARGUMENT, "missing aus"),
    "not a tensor": (NOT_A_TENSOR, grpc.StatusCode.INVALID_ARGUMENT, "input 'aus' is not a valid TensorProto"),
    "not an image": (predict_request({"image_bytes": np.array([b"GIF? no"], dtype=object), "aus": GOOD_AUS},
                                     "encoded"), grpc.StatusCode.INVALID_ARGUMENT, "Unknown image file format"),
    "unknown signature": (predict_request({"aus": GOOD_AUS}, "smile"), grpc.StatusCode.INVALID_ARGUMENT,
                          'Serving signature name: "smile" not found'),
    "unknown model": (predict_request({"images": GOOD_IMAGES, "aus": GOOD_AUS}, name="stargan"),
                      grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(stargan)"),
    "unknown version": (predict_request({"images": GOOD_IMAGES, "aus": GOOD_AUS}, version=9),
                        grpc.StatusCode.NOT_FOUND, "Servable not found for request: Specific(ganimation, 9)"),
    "oversized payload": (predict_request({"images": np.zeros([200, SIZE, SIZE, 3], np.float32),
                                           "aus": np.zeros([200, 17], np.float32)}),
                          grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than max"),
}


@pytest.mark.parametrize("case", sorted(BAD_GRPC_REQUESTS))
def test_bad_grpc_requests_get_clear_errors(served, case):
    request, code, message = BAD_GRPC_REQUESTS[case]
    with pytest.raises(grpc.RpcError) as raised:
        served["prediction"].Predict(request, timeout=60)
    assert raised.value.code() == code
    assert message in raised.value.details()
    good_grpc_request(served)


@pytest.mark.parametrize("fields, message", [
    ([], "GetModelMetadataRequest must specify at least one metadata_field"),
    (["signature_def", "graph"], "Metadata field graph is not supported (only 'signature_def')")])
def test_metadata_fields_other_than_signature_def_are_invalid(served, fields, message):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=fields)
    request.model_spec.name = "ganimation"
    with pytest.raises(grpc.RpcError) as raised:
        served["prediction"].GetModelMetadata(request, timeout=60)
    assert (raised.value.code(), raised.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, message)


def test_an_unknown_model_in_status_is_not_found(served):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "stargan"
    with pytest.raises(grpc.RpcError) as raised:
        served["models"].GetModelStatus(request, timeout=60)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_the_methods_the_local_server_lacks_are_unimplemented(served):
    with pytest.raises(grpc.RpcError) as raised:
        served["prediction"].Classify(classification_pb2.ClassificationRequest(), timeout=60)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    with pytest.raises(grpc.RpcError) as raised:
        served["models"].HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(), timeout=60)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_a_bug_is_answered_internal_with_its_type(served, monkeypatch):
    def broken_run(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(served["manager"], "run", broken_run)
    with pytest.raises(grpc.RpcError) as raised:
        served["prediction"].Predict(predict_request({"images": GOOD_IMAGES, "aus": GOOD_AUS}), timeout=60)
    assert (raised.value.code(), raised.value.details()) == (grpc.StatusCode.INTERNAL, "RuntimeError: a bug")


def test_a_port_in_use_is_refused(served):
    with pytest.raises(OSError, match=f"cannot bind the gRPC port 127.0.0.1:{served['port']}"):
        grpc_service.make_grpc_server(served["manager"], "127.0.0.1", served["port"], MAX_REQUEST_BYTES)
