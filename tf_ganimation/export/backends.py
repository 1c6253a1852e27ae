"""`EditModel` backends for what the package writes, and loading any of them from a path.

- `SavedModelEditModel`: a SavedModel version folder (saved_model.py), run through its root `edit`; it
  estimates AUs through the `estimate_aus` signature of an export that has the critic.
- `load_edit_model(path)`: a training run folder (Keras), a SavedModel version folder or export base,
  or a .tflite file (litert.TFLiteEditModel), told apart by what the path holds.
"""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np
from absl import logging

from tf_ganimation.core import action_units
from tf_ganimation.model.edit_model import EditModel, KerasEditModel

KINDS = ("workdir", "saved_model", "tflite")
_MODEL_HELP = ("expected a training run folder (with config.json and generator.weights.h5), a SavedModel "
               "version folder (with saved_model.pb, from scripts/export.py) or a .tflite file")


class SavedModelEditModel(EditModel):
    """An export version folder (saved_model.py), run through its root `edit` function.

    `estimate_aus(images)` runs the export's `estimate_aus` signature (the critic's AU head, clipped to
    [0, 1], as KerasEditModel's) in slices of batch_size, and is None for an export without the critic.

    Args:
        path: a SavedModel version folder written by saved_model.export_generator (`<base>/<version>/`).

    Attributes:
        function: the SavedModel's `edit`, a tf.function (images float32 [N, S, S, 3] in [0, 1], aus
            float32 [N, num_aus] in [0, 1]) -> {"images", "attention", "color"} tensors, any N; what
            tflite.py converts.

    Raises:
        FileNotFoundError: no saved_model.pb in `path`.
        ValueError: a SavedModel without `edit`, or whose image size cannot be told.
    """

    kind = "saved_model"

    def __init__(self, path: os.PathLike):
        import tensorflow as tf

        from tf_ganimation.export import saved_model

        path = pathlib.Path(path)
        if not (path / "saved_model.pb").is_file():
            raise FileNotFoundError(f"{path / 'saved_model.pb'} not found: expected a SavedModel version folder "
                                    "written by export.py (<base>/<version>/)")
        self.source = str(path)
        loaded = tf.saved_model.load(self.source)
        if not hasattr(loaded, "edit"):
            raise ValueError(f"the SavedModel in {path} has no `edit(images, aus)` function: not a GANimation "
                             "export (scripts/export.py writes one)")
        self._loaded, self.function = loaded, loaded.edit  # `edit` reads the variables `loaded` holds
        self.image_size, self.num_aus = _saved_model_sizes(loaded.edit, path)
        self._estimate = loaded.signatures.get(saved_model.ESTIMATE_SIGNATURE)

    def _edit(self, images, aus):
        return {key: value.numpy() for key, value in self.function(images, aus).items()}

    def estimate_aus(self, images):
        if self._estimate is None:
            return None
        images = np.asarray(images, np.float32)
        return np.concatenate([self._estimate(image=images[start:start + self.batch_size])["aus"].numpy()
                               for start in range(0, len(images), self.batch_size)]).astype(np.float32)


def _saved_model_sizes(function, path: pathlib.Path) -> tuple[int, int]:
    """(image size, number of AUs) of a SavedModel's `edit`, from its input signature or its metadata asset."""
    signature = getattr(function, "input_signature", None)
    num_aus = action_units.NUM_AUS
    if signature and len(signature) == 2 and signature[1].shape.rank == 2 and signature[1].shape[1] is not None:
        num_aus = int(signature[1].shape[1])
    if signature and signature[0].shape.rank == 4 and signature[0].shape[1] is not None:
        return int(signature[0].shape[1]), num_aus
    metadata = path / "assets" / "ganimation.json"
    if metadata.is_file():
        return int(json.loads(metadata.read_text())["image_size"]), num_aus
    raise ValueError(f"cannot tell the image size of the SavedModel {path}: its `edit` function has no input "
                     "signature and it has no assets/ganimation.json")


def load_edit_model(path: str | os.PathLike, with_critic: bool = True) -> EditModel:
    """Loads a model, telling the three kinds apart by what the path holds.

    Args:
        path: a training run folder (config.json: runs.loading.load_generator, and load_critic for the
            current AUs of a face when `with_critic` and the run has critic weights), a SavedModel version
            folder (saved_model.pb), an export base folder (its highest integer version is used) or a
            .tflite file.
        with_critic: load a run's critic too.

    Raises:
        FileNotFoundError: the path does not exist, or a run without trained generator weights.
        ValueError: the path is none of those.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model {path} does not exist: {_MODEL_HELP}")
    if path.is_file():
        if path.suffix.lower() == ".tflite":
            from tf_ganimation.export import litert

            return litert.TFLiteEditModel(path)
        raise ValueError(f"model {path} is a file but not a .tflite model: {_MODEL_HELP}")
    from tf_ganimation.runs import loading, run_folder

    if (path / run_folder.CONFIG_FILE).is_file():
        generator, config = loading.load_generator(path)
        critic = None
        if with_critic:
            try:
                critic, _ = loading.load_critic(path)
            except FileNotFoundError as error:
                logging.warning("No critic in %s (%s): animations start from neutral AUs", path, error)
        return KerasEditModel(generator, config.model.image_size, critic, source=str(path))
    if (path / "saved_model.pb").is_file():
        return SavedModelEditModel(path)
    versions = sorted((int(child.name), child) for child in path.iterdir()
                      if child.name.isdigit() and (child / "saved_model.pb").is_file())
    if versions:
        return SavedModelEditModel(versions[-1][1])
    raise ValueError(f"model {path} holds no config.json, no saved_model.pb and no version folder: {_MODEL_HELP}")
