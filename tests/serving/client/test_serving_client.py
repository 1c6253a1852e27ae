"""serving/client/serving_client.py: the model's operations, the same over gRPC and REST.

The operations run against an in-process local server through both transports (and both REST forms);
the retry policy and the operations' own arithmetic run against a fake transport, without a server.
"""

import io

import grpc
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow_serving.apis import get_model_metadata_pb2

from serving.client import GrpcClient, RestClient, serving_client
from serving.client.serving_client import ServingClient
from serving.local_server import LocalServer
from serving.status import ServingError
from tf_ganimation.core import action_units
from tf_ganimation.export import saved_model

from conftest import expected_images, random_inputs, tiny_generator

SIZE = 32




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


# === Without a server ===

class FakeTransport(ServingClient):
    """Answers `predict` from a list of canned answers (a ServingError is raised), and records the calls."""

    def __init__(self, answers=(), **kwargs):
        super().__init__(**kwargs)
        self.answers, self.calls, self.metadata_calls = list(answers), [], 0

    def predict(self, inputs, signature_name=serving_client.DEFAULT_SIGNATURE, output_filter=()):
        return self._with_retries(lambda: self._answer(inputs, signature_name))

    def _answer(self, inputs, signature_name):
        self.calls.append((signature_name, inputs))
        answer = self.answers.pop(0)
        if isinstance(answer, ServingError):
            raise answer
        return answer

    def metadata(self):
        self.metadata_calls += 1
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        images = signature_map.signature_def["serving_default"].inputs["images"]
        for size in (-1, SIZE, SIZE, 3):
            images.tensor_shape.dim.add(size=size)
        return signature_map


UNAVAILABLE = ServingError(grpc.StatusCode.UNAVAILABLE, "starting")


def test_unavailable_is_retried_with_doubling_waits(monkeypatch):
    waits = []
    monkeypatch.setattr(serving_client.time, "sleep", waits.append)
    client = FakeTransport([UNAVAILABLE, UNAVAILABLE, {"aus": np.zeros(1)}], retries=3, backoff_s=0.25)
    assert list(client.predict({})) == ["aus"]
    assert waits == [0.25, 0.5] and len(client.calls) == 3


def test_unavailable_after_the_last_retry_is_raised(monkeypatch):
    waits = []
    monkeypatch.setattr(serving_client.time, "sleep", waits.append)
    client = FakeTransport([UNAVAILABLE] * 3, retries=2, backoff_s=1.0)
    with pytest.raises(ServingError) as raised:
        client.predict({})
    assert raised.value is UNAVAILABLE and waits == [1.0, 2.0]


def test_other_errors_are_not_retried(monkeypatch):
    monkeypatch.setattr(serving_client.time, "sleep", lambda seconds: pytest.fail("retried"))
    client = FakeTransport([ServingError(grpc.StatusCode.INVALID_ARGUMENT, "16 AUs"), {}])
    with pytest.raises(ServingError, match="16 AUs"):
        client.predict({})
    assert len(client.calls) == 1


def test_the_image_size_comes_from_the_metadata_once():
    client = FakeTransport()
    assert client.image_size() == SIZE and client.image_size() == SIZE
    assert client.metadata_calls == 1


def test_animate_sends_one_batch_and_keeps_the_asked_frames():
    frames = np.random.default_rng(0).uniform(0, 1, [1, 5, SIZE, SIZE, 3]).astype(np.float32)
    client = FakeTransport([{"frames": frames, "num_frames": np.array([3], np.int32)}])
    start, end = np.zeros(17), np.ones(17)
    answer = client.animate(np.zeros([SIZE, SIZE, 3]), start, end, num_frames=3)
    np.testing.assert_array_equal(answer, frames[0, :3])
    ((signature_name, inputs),) = client.calls
    assert signature_name == serving_client.ANIMATE_SIGNATURE
    assert {name: (value.shape, value.dtype) for name, value in inputs.items()} == {
        "image": ((1, SIZE, SIZE, 3), np.float32), "start_aus": ((1, 17), np.float32),
        "end_aus": ((1, 17), np.float32), "num_frames": ((1,), np.int32)}


def test_edit_encoded_sends_bytes_and_answers_lists():
    client = FakeTransport([{"image_bytes": np.array([b"png"], dtype=object),
                             "attention_bytes": np.array([b"mask"], dtype=object)}])
    assert client.edit_encoded([b"jpeg"], np.zeros([1, 17])) == {"image_bytes": [b"png"], "attention_bytes": [b"mask"]}
    ((signature_name, inputs),) = client.calls
    assert signature_name == serving_client.ENCODED_SIGNATURE and inputs["image_bytes"].dtype == object
    assert inputs["aus"].dtype == np.float32


def test_the_transport_calls_are_the_subclasses_to_define():
    client = ServingClient()
    for call in (lambda: client.predict({}), client.metadata, client.status):
        with pytest.raises(NotImplementedError):
            call()
