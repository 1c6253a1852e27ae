"""serving/local_server.py: the manager, the gRPC server and the REST server of one model, together.

The official stubs and raw HTTP talk to a server started in-process on free ports of 127.0.0.1; each
API alone is tested in test_grpc_service.py and test_rest.py, the lifecycle in test_manager.py.
"""

import base64
import http.client
import io
import json
import os
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.local_server import LocalServer
from tf_ganimation.export import saved_model

from conftest import PROJECT_ROOT, expected_images, free_port, random_inputs, tiny_generator

SIZE = 32
MAX_REQUEST_BYTES = 2 * 1024 * 1024




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


# === Both APIs over one manager ===

def test_the_servers_bind_the_asked_host_and_free_ports(served):
    server = served["server"]
    assert server.grpc_target == f"127.0.0.1:{server.grpc_port}" and server.grpc_port > 0
    assert server.rest_url == f"http://127.0.0.1:{server.rest_port}" and server.rest_port not in (0, server.grpc_port)


def test_both_apis_report_the_same_version(served):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "ganimation"
    (grpc_status,) = served["models"].GetModelStatus(request, timeout=60).model_version_status
    status, answer = rest(served["server"], "GET", "/v1/models/ganimation")
    assert status == 200 and [entry["version"] for entry in answer["model_version_status"]] == ["1"]
    assert grpc_status.version == served["server"].manager.current_version == 1


def test_rest_can_be_left_out(served):
    with LocalServer(served["base"], grpc_port=0, rest_port=None, warmup=False) as server:
        assert server.rest_port is None and server.rest_url is None
        assert server.manager.current_version == 1


def test_an_invalid_request_limit_is_refused(served):
    with pytest.raises(ValueError, match="max_request_bytes=0 is invalid"):
        LocalServer(served["base"], grpc_port=0, rest_port=None, max_request_bytes=0)


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
