"""serving/rest.py: TF Serving's REST forms (parsed and answered), and the HTTP server over a ModelManager.

The REST server alone (make_rest_server, no gRPC) runs in-process on a free port of 127.0.0.1.
"""

import base64
import http.client
import json
import threading

import grpc
import numpy as np
import pytest
import tensorflow as tf

from serving import rest
from serving.manager import ModelManager
from serving.status import ServingError
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
    server = rest.make_rest_server(manager, "127.0.0.1", 0, MAX_REQUEST_BYTES)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"generator": generator, "manager": manager, "port": server.server_address[1]}
    server.shutdown()
    server.server_close()
    thread.join(timeout=30)
    manager.stop()


def rest_call(served, method, path, body=None, raw=None):
    connection = http.client.HTTPConnection("127.0.0.1", served["port"], timeout=60)
    payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
    connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    return response.status, answer


# === Round trips ===

@pytest.mark.parametrize("batch", [1, 8])
def test_rest_predict_row_and_columnar_forms(served, batch):
    images, aus = random_inputs(batch, seed=10 + batch)
    expected = expected_images(served["generator"], images, aus)
    status, columnar = rest_call(served, "POST", "/v1/models/ganimation:predict",
                                 {"inputs": {"images": images.tolist(), "aus": aus.tolist()}})
    assert status == 200 and sorted(columnar["outputs"]) == ["attention", "color", "images"]
    np.testing.assert_allclose(np.array(columnar["outputs"]["images"]), expected, atol=1e-5)
    instances = [{"images": image.tolist(), "aus": au.tolist()} for image, au in zip(images, aus)]
    status, row = rest_call(served, "POST", "/v1/models/ganimation/versions/1:predict", {"instances": instances})
    assert status == 200 and len(row["predictions"]) == batch
    assert sorted(row["predictions"][0]) == ["attention", "color", "images"]
    np.testing.assert_allclose(np.array([item["images"] for item in row["predictions"]]), expected, atol=1e-5)


def test_animate_over_rest_row_form(served):
    images, aus = random_inputs(1)
    instance = {"image": images[0].tolist(), "start_aus": [0.0] * 17, "end_aus": aus[0].tolist(), "num_frames": 3}
    status, answer = rest_call(served, "POST", "/v1/models/ganimation:predict",
                               {"signature_name": "animate", "instances": [instance]})
    assert status == 200
    assert np.array(answer["predictions"][0]["frames"]).shape == (3, SIZE, SIZE, 3)
    assert answer["predictions"][0]["num_frames"] == 3


def test_metadata_over_rest(served):
    status, answer = rest_call(served, "GET", "/v1/models/ganimation/metadata")
    assert status == 200 and answer["model_spec"] == {"name": "ganimation", "version": "1", "signature_name": ""}
    rest_images = answer["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["images"]
    assert [dim["size"] for dim in rest_images["tensor_shape"]["dim"]] == ["-1", str(SIZE), str(SIZE), "3"]


def test_model_status_over_rest(served):
    for path in ("/v1/models/ganimation", "/v1/models/ganimation/versions/1"):
        assert rest_call(served, "GET", path) == (200, {"model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})


# === Bad requests: a clear error each, and the server keeps serving ===

def good_rest_request(served):
    images, aus = random_inputs(1)
    status, answer = rest_call(served, "POST", "/v1/models/ganimation:predict",
                               {"inputs": {"images": images.tolist(), "aus": aus.tolist()}})
    assert status == 200
    np.testing.assert_allclose(np.array(answer["outputs"]["images"]),
                               expected_images(served["generator"], images, aus), atol=1e-5)


GOOD_IMAGES, GOOD_AUS = random_inputs(1)
GOOD_IMAGE_LISTS, GOOD_AU_LISTS = GOOD_IMAGES.tolist(), GOOD_AUS.tolist()


def _columnar(images=GOOD_IMAGE_LISTS, aus=GOOD_AU_LISTS, **extra):
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
    "version label": ("/v1/models/ganimation/labels/stable:predict", _columnar(), 400,
                      "version label 'stable' is not configured"),
    "classify": ("/v1/models/ganimation:classify", _columnar(), 501, "classify is not supported"),
    "malformed path": ("/v1/models/ganimation:smile", _columnar(), 400, "Malformed request"),
    "oversized payload": ("/v1/models/ganimation:predict", " " * (MAX_REQUEST_BYTES + 1), 413,
                          "larger than the server's limit"),
}


@pytest.mark.parametrize("case", sorted(BAD_REST_REQUESTS))
def test_bad_rest_requests_get_clear_errors(served, case):
    path, body, status, message = BAD_REST_REQUESTS[case]
    answer_status, answer = rest_call(served, "POST", path, raw=body)
    assert answer_status == status
    assert list(answer) == ["error"] and message in answer["error"]
    good_rest_request(served)


def test_unknown_model_or_version_in_status_and_metadata_is_not_found(served):
    assert rest_call(served, "GET", "/v1/models/stargan")[0] == 404
    assert rest_call(served, "GET", "/v1/models/ganimation/versions/9") == (
        404, {"error": "Could not find version 9 of model ganimation"})
    assert rest_call(served, "GET", "/v1/models/ganimation/versions/9/metadata")[0] == 404
    assert rest_call(served, "GET", "/healthz")[0] == 404


def test_a_get_without_a_model_name_is_invalid(served):
    assert rest_call(served, "GET", "/v1/models") == (400, {"error": "Missing model name in request."})


def test_a_body_without_content_length_is_refused(served):
    # Headers only: a chunked body sent along would be left unread, and the server's close could reset
    # the connection before the answer is read.
    connection = http.client.HTTPConnection("127.0.0.1", served["port"], timeout=60)
    connection.putrequest("POST", "/v1/models/ganimation:predict")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 400 and "a Content-Length header is required" in json.loads(response.read())["error"]
    assert response.getheader("Connection") == "close"
    connection.close()
    good_rest_request(served)


def test_a_bug_is_answered_500_with_its_type(served, monkeypatch):
    def broken_run(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(served["manager"], "run", broken_run)
    assert rest_call(served, "POST", "/v1/models/ganimation:predict", raw=_columnar()) == (
        500, {"error": "RuntimeError: a bug"})


# === The JSON forms, without a server ===

@pytest.mark.parametrize("body, message", [
    (b"", "JSON Parse error: The document is empty"),
    (b'{"inputs": [', "JSON Parse error: "),
    (b"\xff\xfe", "JSON Parse error: "),
    (b"[1, 2]", "JSON Value: the request body is not an object"),
    (b'{"signature_name": 7, "inputs": {}}', "'signature_name' key must be a string value")])
def test_parse_predict_body_errors_name_what_is_wrong(body, message):
    with pytest.raises(ServingError) as raised:
        rest.parse_predict_body(body)
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT and raised.value.message.startswith(message)


def test_parse_predict_body_returns_the_object():
    assert rest.parse_predict_body(b'{"signature_name": "encoded", "inputs": {}}') == {
        "signature_name": "encoded", "inputs": {}}


class TensorInfo:
    def __init__(self, dtype):
        self.dtype = dtype.as_datatype_enum


TWO_INPUTS = {"images": TensorInfo(tf.float32), "num_frames": TensorInfo(tf.int32)}


def test_request_inputs_reads_both_forms_into_the_signatures_dtypes():
    row = {"instances": [{"images": [0.5, 1], "num_frames": 2}, {"images": [0, 0.25], "num_frames": 3}]}
    inputs, form = rest.request_inputs(row, TWO_INPUTS)
    assert form == rest.ROW and inputs["images"].dtype == np.float32 and inputs["num_frames"].dtype == np.int32
    assert inputs["images"].tolist() == [[0.5, 1.0], [0.0, 0.25]] and inputs["num_frames"].tolist() == [2, 3]
    columnar = {"inputs": {"images": [[0.5, 1], [0, 0.25]], "num_frames": [2, 3], "ignored": 1}}
    columns, form = rest.request_inputs(columnar, TWO_INPUTS)
    assert form == rest.COLUMNAR and sorted(columns) == ["images", "num_frames"]
    assert all(np.array_equal(columns[name], inputs[name]) for name in inputs)


def test_a_lone_input_may_be_a_plain_list_in_both_forms():
    lone = {"image_bytes": TensorInfo(tf.string)}
    b64 = {"b64": base64.b64encode(b"png").decode()}
    for document in ({"instances": [b64]}, {"inputs": [b64]}, {"inputs": b64}):
        inputs, _ = rest.request_inputs(document, lone)
        assert inputs["image_bytes"].ravel().tolist() == [b"png"]


@pytest.mark.parametrize("document, message", [
    ({"inputs": {}, "instances": []}, "Not formatted correctly: expecting only one of 'inputs' or 'instances' keys"),
    ({}, "Missing 'inputs' or 'instances' key"),
    ({"instances": {"images": 1}}, "Expecting 'instances' to be a list/array"),
    ({"instances": []}, "No values in 'instances' array"),
    ({"instances": [[0.5]]}, "instances is a plain list, but expecting list of objects as multiple input tensors "
                             "required (images, num_frames)"),
    ({"instances": [{"images": [0.5], "num_frames": 1}, {"images": [0.5]}]},
     "Failed to process element: 1 of 'instances' list: its keys ['images'] must be equal to: images, num_frames"),
    ({"inputs": [0.5]}, "inputs is a plain value/list, but expecting an object as multiple input tensors required "
                        "(images, num_frames)"),
    ({"inputs": {"images": [0.5]}}, "Missing named input: num_frames in 'inputs' object."),
    ({"inputs": {"images": [0.5], "num_frames": [1.5]}}, "JSON value of 'num_frames' of 'inputs' is not of "
                                                         "expected type: int32"),
    ({"instances": [{"images": True, "num_frames": 1}]}, "JSON value of 'images' of 'instances' is not of expected "
                                                         "type: float32 (got booleans)")])
def test_request_inputs_errors_name_the_field(document, message):
    with pytest.raises(ServingError) as raised:
        rest.request_inputs(document, TWO_INPUTS)
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT and raised.value.message.startswith(message)


OUTPUTS = {"image_bytes": np.array([b"\x89PNG", b"GIF8"], dtype=object),
           "au_names": np.array([[b"AU01"], [b"AU02"]], dtype=object),
           "aus": np.array([[0.5], [1.0]], np.float32)}


def test_predict_response_in_the_columnar_form():
    assert rest.predict_response(OUTPUTS, rest.COLUMNAR) == {"outputs": {
        "image_bytes": [{"b64": "iVBORw=="}, {"b64": "R0lGOA=="}], "au_names": [["AU01"], ["AU02"]],
        "aus": [[0.5], [1.0]]}}
    assert rest.predict_response({"aus": OUTPUTS["aus"]}, rest.COLUMNAR) == {"outputs": [[0.5], [1.0]]}


def test_predict_response_in_the_row_form():
    assert rest.predict_response(OUTPUTS, rest.ROW) == {"predictions": [
        {"image_bytes": {"b64": "iVBORw=="}, "au_names": ["AU01"], "aus": [0.5]},
        {"image_bytes": {"b64": "R0lGOA=="}, "au_names": ["AU02"], "aus": [1.0]}]}
    assert rest.predict_response({"aus": OUTPUTS["aus"]}, rest.ROW) == {"predictions": [[0.5], [1.0]]}


def test_predict_response_rows_need_one_batch_size():
    for outputs in ({"aus": OUTPUTS["aus"], "count": np.array([1, 2, 3])}, {"count": np.array(3)}):
        with pytest.raises(ServingError, match="outputs have inconsistent batch sizes"):
            rest.predict_response(outputs, rest.ROW)
    assert rest.predict_response({"count": np.array(3)}, rest.COLUMNAR) == {"outputs": 3}
