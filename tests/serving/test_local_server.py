"""serving/local_server.py (with manager, servable, grpc_service, rest): TF Serving's APIs over our SavedModel.

The official stubs and raw HTTP talk to a server started in-process on free ports of 127.0.0.1.
"""

import base64
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from conftest import PROJECT_ROOT, tiny_generator
from PIL import Image
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.local_server import LocalServer
from tf_ganimation.export import saved_model
from tf_ganimation.model import edit_model

SIZE = 32
MAX_REQUEST_BYTES = 2 * 1024 * 1024




def expected_images(generator, images, aus):
    return edit_model.edit_images(generator, images, aus)["images"].numpy()


def random_inputs(batch, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0, 1, [batch, SIZE, SIZE, 3]).astype(np.float32),
            rng.uniform(0, 1, [batch, 17]).astype(np.float32))


def png_bytes(seed=0, size=(40, 30)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, [size[1], size[0], 3], dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    generator = tiny_generator(seed=0)
    base = tmp_path_factory.mktemp("models") / "ganimation"
    saved_model.export_generator(generator, base)
    server = LocalServer(base, grpc_port=0, rest_port=0, max_request_bytes=MAX_REQUEST_BYTES,
                         poll_interval_s=0.2).start()
    channel = grpc.insecure_channel(server.grpc_target, options=[("grpc.max_receive_message_length", -1),
                                                                  ("grpc.max_send_message_length", -1)])
    yield {"generator": generator, "server": server, "base": base,
           "prediction": prediction_service_pb2_grpc.PredictionServiceStub(channel),
           "models": model_service_pb2_grpc.ModelServiceStub(channel)}
    channel.close()
    server.stop()


def predict_request(inputs, signature_name="serving_default", name="ganimation", version=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def rest(server, method, path, body=None, raw=None):
    port = server if isinstance(server, int) else server.rest_port
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
    connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    return response.status, answer


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


@pytest.mark.parametrize("batch", [1, 8])
def test_rest_predict_row_and_columnar_forms(served, batch):
    images, aus = random_inputs(batch, seed=10 + batch)
    expected = expected_images(served["generator"], images, aus)
    status, columnar = rest(served["server"], "POST", "/v1/models/ganimation:predict",
                            {"inputs": {"images": images.tolist(), "aus": aus.tolist()}})
    assert status == 200 and sorted(columnar["outputs"]) == ["attention", "color", "images"]
    np.testing.assert_allclose(np.array(columnar["outputs"]["images"]), expected, atol=1e-5)
    instances = [{"images": image.tolist(), "aus": au.tolist()} for image, au in zip(images, aus)]
    status, row = rest(served["server"], "POST", "/v1/models/ganimation/versions/1:predict", {"instances": instances})
    assert status == 200 and len(row["predictions"]) == batch
    assert sorted(row["predictions"][0]) == ["attention", "color", "images"]
    np.testing.assert_allclose(np.array([item["images"] for item in row["predictions"]]), expected, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 8])
def test_b64_png_in_and_out_over_rest_and_grpc(served, batch):
    pngs = [png_bytes(seed) for seed in range(batch)]
    aus = random_inputs(batch)[1]
    instances = [{"image_bytes": {"b64": base64.b64encode(png).decode()}, "aus": au.tolist()}
                 for png, au in zip(pngs, aus)]
    status, answer = rest(served["server"], "POST", "/v1/models/ganimation:predict",
                          {"signature_name": "encoded", "instances": instances})
    assert status == 200 and len(answer["predictions"]) == batch
    rest_pngs = [base64.b64decode(item["image_bytes"]["b64"]) for item in answer["predictions"]]
    for png in rest_pngs:
        with Image.open(io.BytesIO(png)) as picture:
            assert (picture.format, picture.size, picture.mode) == ("PNG", (SIZE, SIZE), "RGB")
    response = served["prediction"].Predict(predict_request(
        {"image_bytes": np.array(pngs, dtype=object), "aus": aus}, "encoded"), timeout=60)
    assert list(tf.make_ndarray(response.outputs["image_bytes"])) == rest_pngs


def test_animate_over_rest_row_form(served):
    images, aus = random_inputs(1)
    instance = {"image": images[0].tolist(), "start_aus": [0.0] * 17, "end_aus": aus[0].tolist(), "num_frames": 3}
    status, answer = rest(served["server"], "POST", "/v1/models/ganimation:predict",
                          {"signature_name": "animate", "instances": [instance]})
    assert status == 200
    assert np.array(answer["predictions"][0]["frames"]).shape == (3, SIZE, SIZE, 3)
    assert answer["predictions"][0]["num_frames"] == 3


def test_metadata_over_grpc_and_rest(served):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "ganimation"
    response = served["prediction"].GetModelMetadata(request, timeout=60)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    assert set(saved_model.SIGNATURES) <= set(signature_map.signature_def)
    images = signature_map.signature_def["serving_default"].inputs["images"]
    assert [dim.size for dim in images.tensor_shape.dim] == [-1, SIZE, SIZE, 3]
    assert response.model_spec.version.value == 1
    status, answer = rest(served["server"], "GET", "/v1/models/ganimation/metadata")
    assert status == 200 and answer["model_spec"] == {"name": "ganimation", "version": "1", "signature_name": ""}
    rest_images = answer["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["images"]
    assert [dim["size"] for dim in rest_images["tensor_shape"]["dim"]] == ["-1", str(SIZE), str(SIZE), "3"]


def test_model_status_over_grpc_and_rest(served):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "ganimation"
    response = served["models"].GetModelStatus(request, timeout=60)
    assert [(status.version, status.state, status.status.error_code) for status in response.model_version_status] \
        == [(1, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0)]
    for path in ("/v1/models/ganimation", "/v1/models/ganimation/versions/1"):
        assert rest(served["server"], "GET", path) == (200, {"model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})


# === Bad requests: a clear error each, and the server keeps serving ===

def good_grpc_request(served):
    images, aus = random_inputs(1)
    response = served["prediction"].Predict(predict_request({"images": images, "aus": aus}), timeout=60)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["images"]),
                               expected_images(served["generator"], images, aus), atol=1e-5)


GOOD_IMAGES, GOOD_AUS = random_inputs(1)
NAN_AUS = GOOD_AUS.copy()
NAN_AUS[0, 2] = np.nan
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


def good_rest_request(served):
    images, aus = random_inputs(1)
    status, answer = rest(served["server"], "POST", "/v1/models/ganimation:predict",
                          {"inputs": {"images": images.tolist(), "aus": aus.tolist()}})
    assert status == 200
    np.testing.assert_allclose(np.array(answer["outputs"]["images"]),
                               expected_images(served["generator"], images, aus), atol=1e-5)


def _columnar(images=GOOD_IMAGES.tolist(), aus=GOOD_AUS.tolist(), **extra):
    return json.dumps({"inputs": {"images": images, "aus": aus}, **extra})


BAD_REST_REQUESTS = {
    "wrong shape": ("/v1/models/ganimation:predict", _columnar(images=np.zeros([1, 8, 8, 3]).tolist()),
                    400, "has shape [1, 8, 8, 3]"),
    "wrong dtype": ("/v1/models/ganimation:predict", _columnar(aus=[["high"] * 17]), 400,
                    "is not of expected type: float32"),
    "16 AUs": ("/v1/models/ganimation:predict", _columnar(aus=[[0.5] * 16]), 400, "the signature expects [-1, 17]"),
    "NaN AUs": ("/v1/models/ganimation:predict", _columnar(aus=[[0.5] * 16 + [float("nan")]]), 400,
                "aus must be finite"),
    "ragged lists": ("/v1/models/ganimation:predict", _columnar(aus=[[0.5] * 17, [0.5]]), 400, "different lengths"),
    "bad base64": ("/v1/models/ganimation:predict",
                   json.dumps({"signature_name": "encoded", "instances": [
                       {"image_bytes": {"b64": "@@not base64@@"}, "aus": [0.0] * 17}]}),
                   400, "Unable to base64 decode"),
    "not an image": ("/v1/models/ganimation:predict",
                     json.dumps({"signature_name": "encoded", "instances": [
                         {"image_bytes": {"b64": base64.b64encode(b"plain text").decode()}, "aus": [0.0] * 17}]}),
                     400, "Unknown image file format"),
    "malformed JSON": ("/v1/models/ganimation:predict", '{"inputs": [', 400, "JSON Parse error"),
    "no inputs key": ("/v1/models/ganimation:predict", json.dumps({"examples": []}), 400,
                      "Missing 'inputs' or 'instances' key"),
    "instance keys": ("/v1/models/ganimation:predict", json.dumps({"instances": [{"images": 1}]}), 400,
                      "Failed to process element: 0"),
    "unknown model": ("/v1/models/stargan:predict", _columnar(), 404,
                      "Servable not found for request: Latest(stargan)"),
    "unknown version": ("/v1/models/ganimation/versions/9:predict", _columnar(), 404,
                        "Servable not found for request: Specific(ganimation, 9)"),
    "classify": ("/v1/models/ganimation:classify", _columnar(), 501, "classify is not supported"),
    "malformed path": ("/v1/models/ganimation:smile", _columnar(), 400, "Malformed request"),
    "oversized payload": ("/v1/models/ganimation:predict", " " * (MAX_REQUEST_BYTES + 1), 413,
                          "larger than the server's limit"),
}


@pytest.mark.parametrize("case", sorted(BAD_REST_REQUESTS))
def test_bad_rest_requests_get_clear_errors(served, case):
    path, body, status, message = BAD_REST_REQUESTS[case]
    answer_status, answer = rest(served["server"], "POST", path, raw=body)
    assert answer_status == status
    assert list(answer) == ["error"] and message in answer["error"]
    good_rest_request(served)


def test_unknown_model_or_version_in_status_and_metadata_is_not_found(served):
    server = served["server"]
    assert rest(server, "GET", "/v1/models/stargan")[0] == 404
    assert rest(server, "GET", "/v1/models/ganimation/versions/9") == (
        404, {"error": "Could not find version 9 of model ganimation"})
    assert rest(server, "GET", "/v1/models/ganimation/versions/9/metadata")[0] == 404
    assert rest(server, "GET", "/healthz")[0] == 404
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "stargan"
    with pytest.raises(grpc.RpcError) as raised:
        served["models"].GetModelStatus(request, timeout=60)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


# === Load and versions ===

def test_eight_concurrent_clients_of_twenty_five_requests(served):
    images, aus = random_inputs(1, seed=42)
    expected = expected_images(served["generator"], images, aus)
    body = {"inputs": {"images": images.tolist(), "aus": aus.tolist()}}
    failures, answers = [], []

    def grpc_client():
        for _ in range(25):
            response = served["prediction"].Predict(predict_request({"images": images, "aus": aus}), timeout=120)
            answers.append(tf.make_ndarray(response.outputs["images"]))

    def rest_client():
        connection = http.client.HTTPConnection("127.0.0.1", served["server"].rest_port, timeout=120)
        for _ in range(25):  # one keep-alive connection per client
            connection.request("POST", "/v1/models/ganimation:predict", body=json.dumps(body))
            response = connection.getresponse()
            answer = json.loads(response.read())
            assert response.status == 200, answer
            answers.append(np.array(answer["outputs"]["images"], np.float32))
        connection.close()

    def guarded(function):
        try:
            function()
        except Exception as error:  # collected: an assertion in a thread would be lost
            failures.append(repr(error))

    threads = [threading.Thread(target=guarded, args=(grpc_client if index % 2 else rest_client,))
               for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(answers) == 200
    for answer in answers:
        np.testing.assert_allclose(answer, expected, atol=1e-5)


def wait_for(condition, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_a_new_version_is_picked_up_without_a_restart(tmp_path):
    first, second = tiny_generator(seed=1), tiny_generator(seed=2)
    base = tmp_path / "ganimation"
    saved_model.export_generator(first, base)
    images, aus = random_inputs(2, seed=7)
    with LocalServer(base, grpc_port=0, rest_port=0, poll_interval_s=0.1) as server:
        channel = grpc.insecure_channel(server.grpc_target)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        served_versions, failures, stop = [], [], threading.Event()

        def keep_asking():  # requests keep succeeding while version 2 loads and takes over
            while not stop.is_set():
                try:
                    served_versions.append(stub.Predict(predict_request({"images": images, "aus": aus}),
                                                        timeout=60).model_spec.version.value)
                except grpc.RpcError as error:
                    failures.append(error.details())

        asker = threading.Thread(target=keep_asking)
        asker.start()
        assert wait_for(lambda: len(served_versions) >= 3)
        assert saved_model.export_generator(second, base).name == "2"
        assert wait_for(lambda: server.manager.current_version == 2)
        assert wait_for(lambda: served_versions[-1] == 2)
        stop.set()
        asker.join()
        response = stub.Predict(predict_request({"images": images, "aus": aus}), timeout=60)
        assert response.model_spec.version.value == 2
        np.testing.assert_allclose(tf.make_ndarray(response.outputs["images"]),
                                   expected_images(second, images, aus), atol=1e-5)
        assert failures == []
        assert served_versions[0] == 1 and sorted(set(served_versions)) == [1, 2]
        assert rest(server, "GET", "/v1/models/ganimation")[1]["model_version_status"] == [
            {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
            {"version": "1", "state": "END", "status": {"error_code": "OK", "error_message": ""}}]
        channel.close()


def test_a_broken_version_is_reported_and_the_current_one_keeps_serving(tmp_path):
    base = tmp_path / "ganimation"
    generator = tiny_generator(seed=1)
    saved_model.export_generator(generator, base)
    with LocalServer(base, grpc_port=0, rest_port=0, poll_interval_s=0.1) as server:
        broken = base / "2"
        broken.mkdir()
        (broken / "saved_model.pb").write_bytes(b"this is not a SavedModel")
        assert wait_for(lambda: any(status.version == 2 and status.state == "END"
                                    for status in server.manager.status("ganimation")))
        status, answer = rest(server, "GET", "/v1/models/ganimation/versions/2")
        assert status == 200 and answer["model_version_status"][0]["status"]["error_message"].startswith(
            f"failed to load {broken}")
        images, aus = random_inputs(1)
        status, answer = rest(server, "POST", "/v1/models/ganimation:predict",
                              {"inputs": {"images": images.tolist(), "aus": aus.tolist()}})
        assert status == 200 and server.manager.current_version == 1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_the_command_line_server_answers_the_command_line_client(served, tmp_path):
    grpc_port, rest_port = free_port(), free_port()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(PROJECT_ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-m", "serving.local_server", "--model_base_path", str(served["base"]),
         "--port", str(grpc_port), "--rest_api_port", str(rest_port)],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout.readline().startswith(
            f"serving ganimation version 1: gRPC at 127.0.0.1:{grpc_port}, REST at http://127.0.0.1:{rest_port}")
        image = tmp_path / "face.png"
        image.write_bytes(png_bytes(size=(50, 50)))
        result = subprocess.run(
            [sys.executable, "-m", "serving.client", "--target", f"127.0.0.1:{grpc_port}", "--image", str(image),
             "--expression", "happy", "--out", str(tmp_path / "out.png")],
            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert "wrote" in result.stdout and "AU06=0.80, AU12=1.00" in result.stdout
        with Image.open(tmp_path / "out.png") as picture:
            assert picture.size == (SIZE, SIZE)
        assert rest(rest_port, "GET", "/v1/models/ganimation")[0] == 200
    finally:
        server.terminate()
        assert server.wait(timeout=60) == 0


def test_the_command_line_server_reports_a_missing_base_path(tmp_path, capsys):
    from serving import local_server

    assert local_server.main(["--model_base_path", str(tmp_path / "nothing"), "--port", "0"]) == 1
    assert "nothing not found" in capsys.readouterr().err


def test_the_production_model_config_parses_as_tf_serving_reads_it():
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    text = (PROJECT_ROOT / "serving" / "models.config").read_text()
    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == ("ganimation", "/models/ganimation", "tensorflow")
    assert model.model_version_policy.latest.num_versions == 1
