"""tf_ganimation: GANimation (Pumarola et al., ECCV 2018, arXiv:1807.09251) in TensorFlow 2 / Keras 3.

The public API, in the keras-hub manner (each name is imported when first used, so `import
tf_ganimation` stays cheap):

    import tf_ganimation as tg
    generator = tg.Generator()                       # the paper's Fig. 3, 8,471,296 weights
    model = tg.load_edit_model("runs/quickstart")    # a run folder, a SavedModel or a .tflite file
    edited = model.edit(images, aus)["images"]       # [N, S, S, 3] in [0, 1]

The package is grouped by stage of the data flow, and imports run one way, from a stage to the ones
below it (tests/test_architecture.py checks it):

    core        AU vocabulary, frozen config, image-file rules, pixel ranges, atomic writes, grids
    model       layers, networks, losses, optimizers, the GANimation train_step, the EditModel contract
    faces       MTCNN detection, alignment, paste-back
    data        dataset layouts, AU tables, TFRecords, the tf.data pipeline, datasets from photos
    synthetic   procedural AU-driven faces and dataset folders of them
    runs        a training run's folder: its config, final weights and checkpoints
    evaluation  paired metrics against true renderings, the in-training probe, the sheet
    export      SavedModel for TF Serving, TFLite with its GPU-delegate check, EditModel backends
    training    train(config, workdir): strategy, loop, checkpoints, monitoring, faults
    editing     editing faces in photos: the editor, sheets, animations
    cli, flags  the edge: command-line flags and exit codes
"""

import importlib

__version__ = "0.3.0"

_PUBLIC = {
    "Config": "tf_ganimation.core.config",
    "Generator": "tf_ganimation.model.networks",
    "Critic": "tf_ganimation.model.networks",
    "compose": "tf_ganimation.model.networks",
    "GANimation": "tf_ganimation.model.ganimation",
    "EditModel": "tf_ganimation.model.edit_model",
    "KerasEditModel": "tf_ganimation.model.edit_model",
    "load_generator": "tf_ganimation.runs.loading",
    "load_checkpoint": "tf_ganimation.runs.loading",
    "load_edit_model": "tf_ganimation.export.backends",
    "train": "tf_ganimation.training.trainer",
    "Editor": "tf_ganimation.editing.editor",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tf_ganimation' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
