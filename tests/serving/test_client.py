"""serving/client.py: the gRPC and REST clients behave identically, against an in-process local server."""

import io
import socket
import threading

import grpc
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_generator
from PIL import Image

from serving import client as client_lib
from serving.client import GrpcClient, RestClient
from serving.local_server import LocalServer
from serving.status import ServingError
from tf_ganimation.core import action_units
from tf_ganimation.export import saved_model
from tf_ganimation.model import edit_model

SIZE = 32




def expected_images(generator, images, aus):
    return edit_model.edit_images(generator, images, aus)["images"].numpy()


def random_inputs(batch, seed=0, size=SIZE):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0, 1, [batch, size, size, 3]).astype(np.float32),
            rng.uniform(0, 1, [batch, 17]).astype(np.float32))


def encoded(seed=0, size=(48, 40), format="PNG") -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, [size[1], size[0], 3], dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    generator = tiny_generator()
    base = tmp_path_factory.mktemp("models") / "ganimation"
    saved_model.export_generator(generator, base)
    server = LocalServer(base, grpc_port=0, rest_port=0).start()
    yield generator, server
    server.stop()


@pytest.fixture(scope="module")
def clients(served):
    _, server = served
    made = {"grpc": GrpcClient(server.grpc_target), "rest columnar": RestClient(server.rest_url),
            "rest row": RestClient(server.rest_url, request_format="row")}
    yield made
    for client in made.values():
        client.close()


KINDS = ["grpc", "rest columnar", "rest row"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch", [1, 8])
def test_edit_equals_the_keras_generator(served, clients, kind, batch):
    generator, _ = served
    images, aus = random_inputs(batch, seed=batch)
    outputs = clients[kind].edit(images, aus)
    assert sorted(outputs) == ["attention", "color", "images"]
    assert outputs["images"].dtype == np.float32 and outputs["attention"].shape == (batch, SIZE, SIZE, 1)
    np.testing.assert_allclose(outputs["images"], expected_images(generator, images, aus), atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_edit_resizes_images_of_another_size(served, clients, kind):
    generator, _ = served
    images, aus = random_inputs(2, size=64)
    resized = tf.image.resize(images, [SIZE, SIZE], antialias=True).numpy().clip(0, 1)
    np.testing.assert_allclose(clients[kind].edit(images, aus)["images"], expected_images(generator, resized, aus),
                               atol=1e-5)


def test_edit_encoded_gives_the_same_pngs_on_every_transport(clients):
    images = [encoded(0), encoded(1, size=(100, 80), format="JPEG")]
    aus = np.stack([action_units.preset("happy"), action_units.preset("anger")])
    answers = {kind: clients[kind].edit_encoded(images, aus) for kind in KINDS}
    for answer in answers.values():
        assert answer == answers["grpc"]
    for png in answers["grpc"]["image_bytes"] + answers["grpc"]["attention_bytes"]:
        with Image.open(io.BytesIO(png)) as picture:
            assert (picture.format, picture.size) == ("PNG", (SIZE, SIZE))


@pytest.mark.parametrize("kind", KINDS)
def test_animate_returns_the_asked_frames(served, clients, kind):
    generator, _ = served
    image = random_inputs(1)[0][0]
    start, end = action_units.preset("neutral"), action_units.preset("surprise")
    frames = clients[kind].animate(image, start, end, num_frames=4)
    assert frames.shape == (4, SIZE, SIZE, 3)
    np.testing.assert_allclose(frames[[0, 3]], expected_images(generator, np.stack([image] * 2),
                                                               np.stack([start, end])), atol=1e-5)


def test_metadata_status_and_image_size_agree(clients):
    protos = {kind: (clients[kind].metadata(), clients[kind].status()) for kind in KINDS}
    for metadata, status in protos.values():
        assert metadata == protos["grpc"][0] and status == protos["grpc"][1]
    assert {kind: clients[kind].image_size() for kind in KINDS} == {kind: SIZE for kind in KINDS}
    assert [entry.version for entry in protos["grpc"][1].model_version_status] == [1]


ERRORS = {
    "16 AUs": lambda client: client.edit(random_inputs(1)[0], np.zeros([1, 16], np.float32)),
    "NaN AUs": lambda client: client.edit(random_inputs(1)[0], np.full([1, 17], np.nan, np.float32)),
    "not an image": lambda client: client.edit_encoded([b"just text"], np.zeros([1, 17], np.float32)),
    "unknown signature": lambda client: client.predict({"aus": np.zeros([1, 17], np.float32)}, "frown"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_errors_are_the_same_on_every_transport(clients, case):
    raised = {}
    for kind in KINDS:
        with pytest.raises(ServingError) as error:
            ERRORS[case](clients[kind])
        raised[kind] = (error.value.code, error.value.message)
    assert raised["grpc"][0] == grpc.StatusCode.INVALID_ARGUMENT
    assert raised["rest columnar"] == raised["rest row"] == raised["grpc"]


@pytest.mark.parametrize("make", [lambda server: GrpcClient(server.grpc_target, model_name="stargan"),
                                  lambda server: RestClient(server.rest_url, model_name="stargan")])
def test_an_unknown_model_is_not_found(served, make):
    with make(served[1]) as client, pytest.raises(ServingError) as error:
        client.status()
    assert (error.value.code, error.value.message) == (grpc.StatusCode.NOT_FOUND,
                                                        "Could not find any versions of model stargan")


def test_the_default_grpc_message_limit_would_fail_large_batches(served):
    images, aus = random_inputs(8)
    with GrpcClient(served[1].grpc_target, max_message_bytes=64 * 1024) as small, \
            pytest.raises(ServingError) as error:
        small.edit(images, aus)  # 8 x 32 x 32 x 7 floats = 229 KB of outputs
    assert error.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("make", [lambda port: GrpcClient(f"127.0.0.1:{port}", retries=2, backoff_s=0.01),
                                  lambda port: RestClient(f"http://127.0.0.1:{port}", retries=2, backoff_s=0.01)])
def test_nobody_listening_is_unavailable_after_the_retries(make, monkeypatch):
    waits = []
    monkeypatch.setattr(client_lib.time, "sleep", waits.append)
    with make(free_port()) as client, pytest.raises(ServingError) as error:
        client.status()
    assert error.value.code == grpc.StatusCode.UNAVAILABLE
    assert waits == [0.01, 0.02]  # exponential backoff between the three attempts


def test_a_client_retries_until_the_server_is_up(served, monkeypatch):
    port, started, waits = free_port(), [], []
    real_sleep = client_lib.time.sleep
    monkeypatch.setattr(client_lib.time, "sleep", lambda seconds: (waits.append(seconds), real_sleep(seconds)))
    starter = threading.Timer(0.3, lambda: started.append(
        LocalServer(served[1].manager.base_path, grpc_port=port, rest_port=None).start()))
    starter.start()
    try:
        with GrpcClient(f"127.0.0.1:{port}", retries=8, backoff_s=0.1) as client:
            assert client.status().model_version_status[0].version == 1
        assert waits and waits == [0.1 * 2**attempt for attempt in range(len(waits))]
    finally:
        starter.join()
        for server in started:
            server.stop()


def test_command_line_edits_over_grpc_and_rest(served, tmp_path, capsys):
    _, server = served
    image = tmp_path / "face.jpg"
    image.write_bytes(encoded(3, size=(90, 70), format="JPEG"))
    for name, where in {"grpc": ["--target", server.grpc_target], "rest": ["--rest", server.rest_url]}.items():
        assert client_lib.main([*where, "--image", str(image), "--aus", "AU12=1.0,AU06=0.8",
                                "--out", str(tmp_path / f"{name}.png"),
                                "--attention_out", str(tmp_path / f"{name}_attention.png")]) == 0
        assert f"wrote {tmp_path / f'{name}.png'} (AU06=0.80, AU12=1.00)" in capsys.readouterr().out
    assert (tmp_path / "grpc.png").read_bytes() == (tmp_path / "rest.png").read_bytes()
    with Image.open(tmp_path / "rest_attention.png") as mask:
        assert (mask.mode, mask.size) == ("L", (SIZE, SIZE))


def test_command_line_animates_into_a_gif(served, tmp_path):
    _, server = served
    image = tmp_path / "face.png"
    image.write_bytes(encoded(4, size=(SIZE, SIZE)))
    assert client_lib.main(["--target", server.grpc_target, "--image", str(image), "--expression", "happy",
                            "--frames", "5", "--out", str(tmp_path / "smile.gif")]) == 0
    with Image.open(tmp_path / "smile.gif") as gif:
        assert (gif.format, gif.size, gif.n_frames) == ("GIF", (SIZE, SIZE), 5)


def test_command_line_reports_errors_in_one_line(served, tmp_path, capsys):
    _, server = served
    assert client_lib.main(["--target", server.grpc_target, "--image", str(tmp_path / "missing.jpg"),
                            "--expression", "happy", "--out", str(tmp_path / "out.png")]) == 1
    assert "missing.jpg not found" in capsys.readouterr().err
    image = tmp_path / "face.png"
    image.write_bytes(encoded())
    assert client_lib.main(["--rest", server.rest_url, "--model_name", "stargan", "--image", str(image),
                            "--expression", "happy", "--out", str(tmp_path / "out.png")]) == 1
    assert "answered NOT_FOUND: Servable not found for request: Latest(stargan)" in capsys.readouterr().err
    assert client_lib.main(["--target", server.grpc_target, "--image", str(image), "--aus", "AU99=1",
                            "--out", str(tmp_path / "out.png")]) == 1
    assert "unknown action unit 'AU99'" in capsys.readouterr().err
