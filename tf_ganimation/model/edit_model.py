"""The one way to run a generator on images and AUs: `EditModel.edit(images, aus)`.

    model = KerasEditModel(generator, image_size=128)      # or export.backends.load_edit_model(path)
    outputs = model.edit(images, aus)     # images float32 [N, S, S, 3] in [0, 1], aus float32 [N, 17] in [0, 1]
    outputs["images"]                     # the edited faces, float32 [N, S, S, 3] in [0, 1]

Every consumer (evaluation, the SavedModel's signatures, the TFLite conversion and its parity check,
the photo editor, the serving tests) goes through this contract, with one key vocabulary and one range
at the boundary: {"images", "attention", "color"}, all in [0, 1]. Backends: `KerasEditModel` (here),
and the SavedModel and TFLite backends of `tf_ganimation.export.backends` and `.litert`. Inside the
model range ([-1, 1], core/pixels.py) the paper's names stay: `real_image`, `fake_image`, `color`.
"""

from __future__ import annotations

import abc

import numpy as np

from tf_ganimation.core import action_units, pixels

EDIT_KEYS = ("images", "attention", "color")


def edit_images(generator, images, aus) -> dict:
    """One edit of unit-range images, as a traceable function of tensors (the backends' common core).

    Args:
        generator: a built `networks.Generator`.
        images: float32 [batch, height, width, 3] in [0, 1]; aus: float32 [batch, num_aus] in [0, 1].

    Returns:
        {"images": the composed edit (Eq. 1) [batch, height, width, 3] in [0, 1], "attention":
         [batch, height, width, 1] in [0, 1] (1 keeps the input pixel), "color": [batch, height, width, 3]
         in [0, 1]}.
    """
    from tf_ganimation.model import networks

    real_image = pixels.unit_to_model(images)
    outputs = generator(real_image, aus)
    fake_image = networks.compose(real_image, outputs["color"], outputs["attention"])
    return {"images": pixels.model_to_unit(fake_image), "attention": outputs["attention"],
            "color": pixels.model_to_unit(outputs["color"])}


class EditModel(abc.ABC):
    """A generator behind the edit contract.

    Call (`edit` or the instance itself):
        images: float32 [N, S, S, 3] in [0, 1], S = image_size, N >= 1.
        aus: float32 [N, num_aus] in [0, 1], the target AUs (action_units order).

    Returns:
        {"images": float32 [N, S, S, 3] in [0, 1] (edited), "attention": float32 [N, S, S, 1] in [0, 1]
         (1 keeps the input pixel), "color": float32 [N, S, S, 3] in [0, 1]}, as numpy arrays.

    Attributes:
        image_size: S.
        num_aus: the AU vector's length (17).
        kind: "workdir" (Keras), "saved_model" or "tflite".
        source: where it was loaded from, for messages.
        batch_size: images per call of the backend; larger inputs run in slices of it.

    Notes: no validation of values: inputs outside [0, 1] or NaN go through unchanged (the SavedModel's
    `serving_default` clips and checks them).
    """

    image_size: int
    num_aus: int = action_units.NUM_AUS
    kind: str
    source: str
    batch_size: int = 16  # bounds memory on 85-image AU sweeps

    def edit(self, images: np.ndarray, aus: np.ndarray) -> dict[str, np.ndarray]:
        images = np.asarray(images, np.float32)
        aus = np.asarray(aus, np.float32)
        size = self.image_size
        if images.ndim != 4 or images.shape[1:] != (size, size, 3) or images.shape[0] < 1:
            raise ValueError(f"images of shape {list(images.shape)}: {self.source} takes float32 "
                             f"[N, {size}, {size}, 3] in [0, 1] with N >= 1")
        if aus.shape != (images.shape[0], self.num_aus):
            raise ValueError(f"aus of shape {list(aus.shape)}: expected [{images.shape[0]}, {self.num_aus}] "
                             "(one AU vector per image)")
        parts = [self._edit(images[start:start + self.batch_size], aus[start:start + self.batch_size])
                 for start in range(0, images.shape[0], self.batch_size)]
        return {key: np.concatenate([np.asarray(part[key], np.float32) for part in parts]) for key in EDIT_KEYS}

    def __call__(self, images: np.ndarray, aus: np.ndarray) -> dict[str, np.ndarray]:
        return self.edit(images, aus)

    @abc.abstractmethod
    def _edit(self, images: np.ndarray, aus: np.ndarray) -> dict:
        """One slice of at most batch_size images through the backend: {EDIT_KEYS: arrays}."""

    def estimate_aus(self, images: np.ndarray) -> np.ndarray | None:
        """The AUs of faces, float32 [N, num_aus] in [0, 1], or None when this model cannot estimate them.

        images: float32 [N, S, S, 3] in [0, 1]. The critic's AU head, clipped to [0, 1], estimates them:
        a KerasEditModel given the critic (a run folder), or a SavedModel exported with the critic (its
        `estimate_aus` signature, export.backends.SavedModelEditModel). TFLite models cannot (litert.py).
        """
        del images
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r}, image_size={self.image_size}, batch_size={self.batch_size})"


class KerasEditModel(EditModel):
    """A trained generator (and optionally its critic, whose AU head estimates a face's AUs).

    Args:
        generator: a built networks.Generator (images in [-1, 1] inside).
        image_size: the size it was trained at.
        critic: a built networks.Critic at image_size, or None.
        source: where it came from, for messages.
        batch_size: images per generator call.
    """

    kind = "workdir"

    def __init__(self, generator, image_size: int, critic=None, source: str = "<keras>", batch_size: int = 16):
        import tensorflow as tf

        self.image_size, self.source, self.batch_size = int(image_size), source, int(batch_size)
        self.num_aus = int(generator.num_aus)
        self.generator, self.critic = generator, critic
        images = tf.TensorSpec([None, image_size, image_size, 3], tf.float32)
        aus = tf.TensorSpec([None, self.num_aus], tf.float32)
        self.function = tf.function(lambda images, aus: edit_images(generator, images, aus),
                                    input_signature=[images, aus])
        if critic is not None:
            self._critic_aus = tf.function(lambda images: critic(pixels.unit_to_model(images))["aus"],
                                           input_signature=[images])

    def _edit(self, images, aus):
        return {key: value.numpy() for key, value in self.function(images, aus).items()}

    def estimate_aus(self, images):
        if self.critic is None:
            return None
        aus = np.concatenate([self._critic_aus(np.asarray(images[start:start + self.batch_size], np.float32)).numpy()
                              for start in range(0, len(images), self.batch_size)])
        return np.clip(aus, 0.0, 1.0).astype(np.float32)
