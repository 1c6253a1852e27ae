"""What the gRPC and REST clients share: the model's operations on top of three transport calls.

A transport (grpc_client.GrpcClient, rest_client.RestClient) implements `predict`, `metadata` and
`status` and raises `ServingError(code, message)`; everything a caller does with the model (edit,
edit_encoded, animate, image_size) is written once here, on top of them, so it behaves the same on
both transports.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

import grpc
import numpy as np

from serving.status import ServingError

DEFAULT_MODEL_NAME = "ganimation"
DEFAULT_TARGET = "localhost:8500"
ENCODED_SIGNATURE, ANIMATE_SIGNATURE, DEFAULT_SIGNATURE = "encoded", "animate", "serving_default"


class ServingClient:
    """The model's operations on top of `predict`, `metadata` and `status`, which each transport defines.

    Args:
        model_name: the served model's name.
        version: a version number, or None for the latest.
        timeout_s: the deadline of each call, in seconds.
        retries: further attempts after an UNAVAILABLE answer.
        backoff_s: the wait before the first retry; doubled before each next one.
    """

    def __init__(self, model_name: str = DEFAULT_MODEL_NAME, version: int | None = None, timeout_s: float = 30.0,
                 retries: int = 3, backoff_s: float = 0.5):
        self.model_name = model_name
        self.version = version
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._signature_defs = None

    # === Transport, per client ===

    def predict(self, inputs: Mapping[str, np.ndarray], signature_name: str = DEFAULT_SIGNATURE,
                output_filter: Iterable[str] = ()) -> dict[str, np.ndarray]:
        """Runs a signature: numpy inputs (strings as bytes) -> numpy outputs (strings as object arrays)."""
        raise NotImplementedError

    def metadata(self):
        """The model's signature defs, a tensorflow_serving SignatureDefMap proto."""
        raise NotImplementedError

    def status(self):
        """The model's versions and their states, a GetModelStatusResponse proto."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _with_retries(self, call):
        for attempt in range(self.retries + 1):
            try:
                return call()
            except ServingError as error:
                if error.code != grpc.StatusCode.UNAVAILABLE or attempt == self.retries:
                    raise
                time.sleep(self.backoff_s * 2**attempt)

    # === The model's operations ===

    def signature_defs(self) -> Mapping:
        if self._signature_defs is None:
            self._signature_defs = self.metadata().signature_def
        return self._signature_defs

    def image_size(self) -> int:
        """The side of the square images the model takes, from the serving_default signature's shape."""
        return self.signature_defs()[DEFAULT_SIGNATURE].inputs["images"].tensor_shape.dim[1].size

    def edit(self, images: np.ndarray, aus: np.ndarray) -> dict[str, np.ndarray]:
        """float32 [N, H, W, 3] in [0, 1] (resized to the model's size if needed), aus [N, 17] in [0, 1]
        -> {"images", "color": float32 [N, S, S, 3] in [0, 1], "attention": float32 [N, S, S, 1]}."""
        images = self._model_size(images)
        return self.predict({"images": images, "aus": np.asarray(aus, np.float32)}, DEFAULT_SIGNATURE)

    def edit_encoded(self, image_bytes: Sequence[bytes], aus: np.ndarray) -> dict[str, list[bytes]]:
        """Encoded images of any size [N] and aus [N, 17] -> {"image_bytes", "attention_bytes"}: N PNGs each."""
        outputs = self.predict({"image_bytes": np.array(list(image_bytes), dtype=object),
                                "aus": np.asarray(aus, np.float32)}, ENCODED_SIGNATURE)
        return {name: list(value) for name, value in outputs.items()}

    def animate(self, image: np.ndarray, start_aus: np.ndarray, end_aus: np.ndarray, num_frames: int
                ) -> np.ndarray:
        """One image float32 [H, W, 3] in [0, 1], AUs [17] at the start and the end -> frames [F, S, S, 3]."""
        image = self._model_size(np.asarray(image, np.float32)[None])
        outputs = self.predict({"image": image, "start_aus": np.asarray(start_aus, np.float32)[None],
                                "end_aus": np.asarray(end_aus, np.float32)[None],
                                "num_frames": np.array([num_frames], np.int32)}, ANIMATE_SIGNATURE)
        return outputs["frames"][0, :int(outputs["num_frames"][0])]

    def _model_size(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, np.float32)
        size = self.image_size()
        if images.ndim == 4 and images.shape[1:3] != (size, size):
            import tensorflow as tf  # noqa: PLC0415 (only for the odd image)

            images = tf.image.resize(images, [size, size], antialias=True).numpy().clip(0.0, 1.0)
        return images
