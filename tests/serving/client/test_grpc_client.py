"""serving/client/grpc_client.py: GrpcClient against an in-process local server, and against nobody."""

import threading

import grpc
import pytest

from serving.client import GrpcClient, serving_client
from serving.client.grpc_client import DEFAULT_MAX_MESSAGE_BYTES
from serving.local_server import LocalServer
from serving.status import ServingError
from tf_ganimation.export import saved_model

from conftest import free_port, random_inputs, tiny_generator

SIZE = 32




@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("models") / "ganimation"
    saved_model.export_generator(tiny_generator(), base)
    server = LocalServer(base, grpc_port=0, rest_port=None).start()
    yield server
    server.stop()


def test_an_unknown_model_is_not_found(served):
    with GrpcClient(served.grpc_target, model_name="stargan") as client, pytest.raises(ServingError) as error:
        client.status()
    assert (error.value.code, error.value.message) == (grpc.StatusCode.NOT_FOUND,
                                                        "Could not find any versions of model stargan")


def test_a_pinned_version_is_asked_for(served):
    with GrpcClient(served.grpc_target, version=1) as client:
        assert [entry.version for entry in client.status().model_version_status] == [1]
    images, aus = random_inputs(1)
    with GrpcClient(served.grpc_target, version=9) as client, pytest.raises(ServingError) as error:
        client.predict({"images": images, "aus": aus})
    assert (error.value.code, error.value.message) == (grpc.StatusCode.NOT_FOUND,
                                                        "Servable not found for request: Specific(ganimation, 9)")


def test_the_output_filter_is_sent(served):
    images, aus = random_inputs(1)
    with GrpcClient(served.grpc_target) as client:
        assert list(client.predict({"images": images, "aus": aus}, output_filter=["color"])) == ["color"]


def test_the_default_grpc_message_limit_would_fail_large_batches(served):
    images, aus = random_inputs(8)
    with GrpcClient(served.grpc_target, max_message_bytes=64 * 1024) as small, \
            pytest.raises(ServingError) as error:
        small.edit(images, aus)  # 8 x 32 x 32 x 7 floats = 229 KB of outputs
    assert error.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert DEFAULT_MAX_MESSAGE_BYTES == 256 * 1024 * 1024
    with GrpcClient(served.grpc_target) as default:
        assert default.edit(images, aus)["images"].shape == (8, SIZE, SIZE, 3)


def test_nobody_listening_is_unavailable_after_the_retries(monkeypatch):
    waits = []
    monkeypatch.setattr(serving_client.time, "sleep", waits.append)
    with GrpcClient(f"127.0.0.1:{free_port()}", retries=2, backoff_s=0.01) as client, \
            pytest.raises(ServingError) as error:
        client.status()
    assert error.value.code == grpc.StatusCode.UNAVAILABLE
    assert waits == [0.01, 0.02]  # exponential backoff between the three attempts


def test_a_client_retries_until_the_server_is_up(served, monkeypatch):
    port, started, waits = free_port(), [], []
    real_sleep = serving_client.time.sleep
    monkeypatch.setattr(serving_client.time, "sleep", lambda seconds: (waits.append(seconds), real_sleep(seconds)))
    starter = threading.Timer(0.3, lambda: started.append(
        LocalServer(served.manager.base_path, grpc_port=port, rest_port=None).start()))
    starter.start()
    try:
        with GrpcClient(f"127.0.0.1:{port}", retries=8, backoff_s=0.1) as client:
            assert client.status().model_version_status[0].version == 1
        assert waits and waits == [0.1 * 2**attempt for attempt in range(len(waits))]
    finally:
        starter.join()
        for server in started:
            server.stop()
