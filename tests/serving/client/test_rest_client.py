"""serving/client/rest_client.py: RestClient against an in-process local server, and against nobody."""


import grpc
import numpy as np
import pytest

from serving.client import RestClient, rest_client, serving_client
from serving.local_server import LocalServer
from serving.status import ServingError
from tf_ganimation.export import saved_model

from conftest import free_port, random_inputs, tiny_generator

SIZE = 32




@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("models") / "ganimation"
    saved_model.export_generator(tiny_generator(), base)
    server = LocalServer(base, grpc_port=0, rest_port=0).start()
    yield server
    server.stop()


def test_an_unknown_model_is_not_found(served):
    with RestClient(served.rest_url, model_name="stargan") as client, pytest.raises(ServingError) as error:
        client.status()
    assert (error.value.code, error.value.message) == (grpc.StatusCode.NOT_FOUND,
                                                        "Could not find any versions of model stargan")


@pytest.mark.parametrize("request_format", ["columnar", "row"])
def test_a_pinned_version_and_the_output_filter(served, request_format):
    images, aus = random_inputs(2)
    with RestClient(served.rest_url, version=1, request_format=request_format) as client:
        assert [entry.version for entry in client.status().model_version_status] == [1]
        outputs = client.predict({"images": images, "aus": aus}, output_filter=["attention"])
        assert list(outputs) == ["attention"] and outputs["attention"].shape == (2, SIZE, SIZE, 1)
    with RestClient(served.rest_url, version=9) as client, pytest.raises(ServingError) as error:
        client.predict({"images": images, "aus": aus})
    assert (error.value.code, error.value.message) == (grpc.StatusCode.NOT_FOUND,
                                                        "Servable not found for request: Specific(ganimation, 9)")


def test_a_lone_output_gets_its_name_back(served):
    with RestClient(served.rest_url, request_format="row") as client:
        described = client.predict({"aus": np.zeros([2, 17], np.float32)}, "describe_aus", output_filter=["aus"])
        assert described["aus"].shape == (2, 17) and described["aus"].dtype == np.float32


def test_the_keep_alive_connection_is_reused_and_closed(served):
    with RestClient(served.rest_url) as client:
        client.status()
        connection = client._local.connection
        client.status()
        assert client._local.connection is connection
    assert client._local.connection is None


def test_the_url_is_checked_and_normalised():
    assert RestClient("localhost:8501").url == "http://localhost:8501"
    assert RestClient("http://127.0.0.1").url == "http://127.0.0.1:80"
    with pytest.raises(ValueError, match="REST url 'https://example.org' is invalid: expected http://host:port"):
        RestClient("https://example.org")
    with pytest.raises(ValueError, match="request_format='csv' is invalid: expected 'columnar' or 'row'"):
        RestClient("localhost:8501", request_format="csv")


def test_row_predictions_are_read_as_columns():
    assert rest_client._columns([{"images": [1], "aus": [2]}, {"images": [3], "aus": [4]}]) == {
        "images": [[1], [3]], "aus": [[2], [4]]}
    assert rest_client._columns([{"b64": "AAAA"}]) == {"": [{"b64": "AAAA"}]}
    assert rest_client._columns([[0.5], [1.0]]) == {"": [[0.5], [1.0]]}


def test_nobody_listening_is_unavailable_after_the_retries(monkeypatch):
    waits = []
    monkeypatch.setattr(serving_client.time, "sleep", waits.append)
    with RestClient(f"http://127.0.0.1:{free_port()}", retries=2, backoff_s=0.01) as client, \
            pytest.raises(ServingError) as error:
        client.status()
    assert error.value.code == grpc.StatusCode.UNAVAILABLE
    assert waits == [0.01, 0.02]  # exponential backoff between the three attempts
