"""The decoded training images of one input pipeline, held in host memory (DataConfig.cache_images).

`ImageCache.decode` reads and decodes every example the pipeline may read once, in parallel, into one
uint8 tensor [rows, H, W, 3]; `row_chunks` turns the order the uncached stream reads
(`training_epochs.TrainingEpochs.slot_chunks`) into rows of it, and `lookup` gathers a batch of them.
A file that fails to decode is dropped with a logged warning, as in the uncached stream: it has no row.

Memory: H * W * 3 bytes per image (200,000 faces at 128 px: 9.8 GB; at 32 px: 0.6 GB), about twice
that while the tensor is assembled.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from absl import logging

from tf_ganimation.data import training_epochs

# A dataset that captures the cache must skip tf.data's graph rewrites: they serialise every captured
# tensor, which copies the whole cache (seconds, and twice the memory for as long as the stream lives).
# Each stage of such a stream sets its parallelism itself.
OPTIONS = tf.data.Options()
OPTIONS.experimental_optimization.apply_default_optimizations = False

_NOT_CACHED = -1  # the row of a slot whose image did not decode


@dataclasses.dataclass(frozen=True)
class ImageCache:
    """Decoded images by slot.

    Attributes:
        epochs: the order the rows replay.
        images: uint8 [rows, H, W, 3] in [0, 255].
        real_aus: float32 [rows, NUM_AUS] in [0, 1].
        row_of_slot: int64 [epochs.num_slots]: the row of each slot, or _NOT_CACHED.
    """

    epochs: training_epochs.TrainingEpochs
    images: tf.Tensor
    real_aus: tf.Tensor
    row_of_slot: tf.Tensor

    @classmethod
    def decode(cls, epochs: training_epochs.TrainingEpochs,
               decode_image: Callable[[tf.Tensor], tf.Tensor]) -> ImageCache:
        """Reads and decodes `epochs.all_examples()` with decode_image (string [] -> uint8 [H, W, 3])."""
        start = time.monotonic()

        def decode(example):
            return {"slot": example["slot"], "real_image": decode_image(epochs.encoded_image(example)),
                    "real_aus": example["real_aus"]}

        decoded = epochs.all_examples().map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        # The warning names the error, not the file; load_examples names it when run again.
        decoded = decoded.ignore_errors(log_warning=True)
        # One batch: the images are copied once into the cache, not into chunks and then the cache.
        everything = list(decoded.batch(max(1, epochs.num_slots)))
        if everything:
            slots, images, real_aus = (everything[0][key] for key in ("slot", "real_image", "real_aus"))
        else:
            image_spec, aus_spec = decoded.element_spec["real_image"], decoded.element_spec["real_aus"]
            slots = tf.zeros([0], tf.int64)
            images, real_aus = tf.zeros([0, *image_spec.shape], tf.uint8), tf.zeros([0, *aus_spec.shape])
        row_of_slot = np.full([epochs.num_slots], _NOT_CACHED, np.int64)
        row_of_slot[slots.numpy()] = np.arange(len(slots))
        logging.info("Cached %d of %d decoded training images in host memory (%.2f GB) in %.1f s",
                     len(slots), epochs.num_slots, images.shape.num_elements() / 1e9, time.monotonic() - start)
        return cls(epochs, images, real_aus, tf.constant(row_of_slot))

    def row_chunks(self, seed: tf.Tensor, skip: tf.Tensor) -> tf.data.Dataset:
        """`TrainingEpochs.stream`'s epoch_chunks: one epoch's int64 rows, in the uncached stream's order."""
        row_of_slot = self.row_of_slot
        return self.epochs.slot_chunks(seed, skip).map(
            lambda slots: tf.boolean_mask(tf.gather(row_of_slot, slots), tf.gather(row_of_slot, slots) >= 0))

    def lookup(self, rows: tf.Tensor) -> dict[str, tf.Tensor]:
        """{"real_image": uint8 [n, H, W, 3], "real_aus": float32 [n, NUM_AUS]} of int64 rows [n]."""
        return {"real_image": tf.gather(self.images, rows), "real_aus": tf.gather(self.real_aus, rows)}
