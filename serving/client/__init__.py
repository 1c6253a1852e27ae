r"""Clients of the served GANimation model, over gRPC or REST (the command line: `python -m serving.client`).

Both clients have the same methods and raise the same `ServingError(code, message)`, against
tensorflow_model_server and against serving/local_server.py alike:

    with GrpcClient("localhost:8500") as client:          # or RestClient("http://localhost:8501")
        edited = client.edit_encoded([jpeg_bytes], aus)    # {"image_bytes": [png], "attention_bytes": [png]}
        outputs = client.edit(images, aus)                 # {"images", "attention", "color"}, float32 in [0, 1]
        frames = client.animate(image, start_aus, end_aus, num_frames=12)   # float32 [12, S, S, 3]
        client.image_size(), client.metadata(), client.status()

`edit` and `animate` take float images and resize them on the client when they are not the model's
size (the size comes from GetModelMetadata); `edit_encoded` sends encoded files of any size, which the
`encoded` signature decodes and resizes on the server.

- `serving_client`: ServingClient, the model's operations, written once over the transport calls.
- `grpc_client`: GrpcClient, PredictionService and ModelService with the official stubs.
- `rest_client`: RestClient, TF Serving's REST API.
- `command_line`: `python -m serving.client` (it imports this package; this package never imports it).
"""

from __future__ import annotations

from serving.client.grpc_client import DEFAULT_MAX_MESSAGE_BYTES, GrpcClient
from serving.client.rest_client import RestClient
from serving.client.serving_client import (
    ANIMATE_SIGNATURE,
    DEFAULT_MODEL_NAME,
    DEFAULT_SIGNATURE,
    DEFAULT_TARGET,
    ENCODED_SIGNATURE,
    ServingClient,
)
from serving.status import ServingError

__all__ = ["ANIMATE_SIGNATURE", "DEFAULT_MAX_MESSAGE_BYTES", "DEFAULT_MODEL_NAME", "DEFAULT_SIGNATURE",
           "DEFAULT_TARGET", "ENCODED_SIGNATURE", "GrpcClient", "RestClient", "ServingClient", "ServingError",
           "make_client"]


def make_client(target: str | None = None, rest: str | None = None, **kwargs) -> ServingClient:
    """A RestClient when `rest` is given, else a GrpcClient for `target` (default localhost:8500).

    Args:
        target: "host:port" of the gRPC API.
        rest: "http://host:port" of the REST API; wins over `target`.
        **kwargs: ServingClient's arguments; `request_format` (RestClient's) is dropped for gRPC.
    """
    if rest:
        return RestClient(rest, **kwargs)
    kwargs.pop("request_format", None)
    return GrpcClient(target or DEFAULT_TARGET, **kwargs)
