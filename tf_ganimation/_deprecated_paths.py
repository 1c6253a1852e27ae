"""The package's flat import paths before 0.2, kept working for one release with a DeprecationWarning.

Until 0.2 every module sat directly in tf_ganimation/ (tf_ganimation.networks, .training, ...). Each
old path now resolves to its new home:
  * an old module whose name is free (tf_ganimation.networks) is a stand-in module that looks names up
    in the new modules listed for it;
  * an old module whose name is now a subpackage's (tf_ganimation.training was one module and is now
    a subpackage) answers its old names through that subpackage's `__getattr__`.
Either way the first use warns once, naming the new path. Nothing here imports a stage until a name
is asked for.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

# Old module -> the new modules its names live in now, searched in order.
MOVED = {
    "tf_ganimation.action_units": ("tf_ganimation.core.action_units",),
    "tf_ganimation.config": ("tf_ganimation.core.config",),
    "tf_ganimation.photos": ("tf_ganimation.core.image_files",),
    "tf_ganimation.networks": ("tf_ganimation.model.networks", "tf_ganimation.model.layers",
                               "tf_ganimation.model.edit_model"),
    "tf_ganimation.losses": ("tf_ganimation.model.losses",),
    "tf_ganimation.layout": ("tf_ganimation.data.layout",),
    "tf_ganimation.annotations": ("tf_ganimation.data.annotations", "tf_ganimation.core.image_files"),
    "tf_ganimation.inventory": ("tf_ganimation.data.inventory", "tf_ganimation.core.image_files"),
    "tf_ganimation.tfrecords": ("tf_ganimation.data.tfrecords",),
    "tf_ganimation.prepare": ("tf_ganimation.data.prepare", "tf_ganimation.data.prepare_journal",
                              "tf_ganimation.core.progress"),
    "tf_ganimation.face": ("tf_ganimation.faces.detection", "tf_ganimation.faces.alignment",
                           "tf_ganimation.faces.blending"),
    "tf_ganimation.synthetic_dataset": ("tf_ganimation.synthetic.synthetic_dataset",),
    "tf_ganimation.workdir": ("tf_ganimation.runs.run_folder", "tf_ganimation.runs.loading",
                              "tf_ganimation.core.atomic"),
    "tf_ganimation.checkpoints": ("tf_ganimation.training.checkpoints",),
    "tf_ganimation.tflite": ("tf_ganimation.export.tflite", "tf_ganimation.export.backends",
                             "tf_ganimation.export.tflite_benchmark"),
    "tf_ganimation.gpu_compatibility": ("tf_ganimation.export.gpu_compatibility", "tf_ganimation.export.flatbuffer"),
    "tf_ganimation.litert": ("tf_ganimation.export.litert",),
    "tf_ganimation.animate": ("tf_ganimation.editing.editor", "tf_ganimation.editing.edit_job",
                              "tf_ganimation.editing.contact_sheet", "tf_ganimation.editing.outputs",
                              "tf_ganimation.core.image_files", "tf_ganimation.core.grids",
                              "tf_ganimation.export.backends", "tf_ganimation.export.litert",
                              "tf_ganimation.model.edit_model"),
}
# Old modules whose name is now a subpackage's: the subpackage -> where the old module's names live.
SHADOWED = {
    "tf_ganimation.model": ("tf_ganimation.model.ganimation", "tf_ganimation.model.optimizers"),
    "tf_ganimation.data": ("tf_ganimation.data.pipeline",),
    "tf_ganimation.synthetic": ("tf_ganimation.synthetic.identity", "tf_ganimation.synthetic.geometry",
                                "tf_ganimation.synthetic.renderer"),
    "tf_ganimation.training": ("tf_ganimation.training.trainer", "tf_ganimation.training.strategy",
                               "tf_ganimation.training.schedule", "tf_ganimation.training.faults",
                               "tf_ganimation.training.monitor", "tf_ganimation.runs.loading",
                               "tf_ganimation.model.ganimation"),
    "tf_ganimation.evaluation": ("tf_ganimation.evaluation.metrics", "tf_ganimation.evaluation.synthetic_edits",
                                 "tf_ganimation.evaluation.probe", "tf_ganimation.evaluation.sheet",
                                 "tf_ganimation.evaluation.evaluator", "tf_ganimation.core.grids"),
    "tf_ganimation.export": ("tf_ganimation.export.saved_model",),
}
# Names that changed as well as moved: (old module, old name) -> (new module, new name).
RENAMED = {
    ("tf_ganimation.networks", "edit_unit_range"): ("tf_ganimation.model.edit_model", "edit_images"),
    ("tf_ganimation.animate", "load_model"): ("tf_ganimation.export.backends", "load_edit_model"),
    ("tf_ganimation.litert", "TFLiteGenerator"): ("tf_ganimation.export.litert", "TFLiteEditModel"),
    ("tf_ganimation.animate", "MODEL_KINDS"): ("tf_ganimation.export.backends", "KINDS"),
    ("tf_ganimation.workdir", "atomic_write_text"): ("tf_ganimation.core.atomic", "write_text"),
    ("tf_ganimation.inventory", "check_image_file"): ("tf_ganimation.core.image_files", "check_training_image"),
    ("tf_ganimation.inventory", "check_image_files"): ("tf_ganimation.core.image_files", "check_training_images"),
    ("tf_ganimation.inventory", "MAX_IMAGE_PIXELS"): ("tf_ganimation.core.image_files", "MAX_TRAINING_IMAGE_PIXELS"),
    ("tf_ganimation.annotations", "IMAGE_EXTENSIONS"): ("tf_ganimation.core.image_files", "TRAINING_IMAGE_EXTENSIONS"),
    ("tf_ganimation.prepare", "PHOTO_EXTENSIONS"): ("tf_ganimation.core.image_files", "PHOTO_EXTENSIONS"),
}


def resolve(old_module: str, name: str, homes: tuple[str, ...]):
    """The object `old_module.name` now is, with a DeprecationWarning; AttributeError when it has none."""
    if (old_module, name) in RENAMED:
        new_module, new_name = RENAMED[(old_module, name)]
        value = getattr(importlib.import_module(new_module), new_name)
    else:
        for new_module in homes:
            try:
                module = importlib.import_module(new_module)
            except ModuleNotFoundError:
                continue
            if not name.startswith("__") and hasattr(module, name):
                value, new_name = getattr(module, name), name
                break
        else:
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
    warnings.warn(f"{old_module}.{name} is {new_module}.{new_name} since tf_ganimation 0.2; the old path goes "
                  "in the next release", DeprecationWarning, stacklevel=3)
    return value


def old_module_getattr(package: str):
    """The `__getattr__` of a subpackage that took an old module's name (SHADOWED)."""
    homes = SHADOWED[package]

    def __getattr__(name: str):
        # `from tf_ganimation.model import layers` asks for the attribute before importing the submodule:
        # a submodule's name is never an old name, and must be left to the import system.
        if name.startswith("__") or importlib.util.find_spec(f"{package}.{name}") is not None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return resolve(package, name, homes)

    return __getattr__


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module of MOVED as a stand-in whose names resolve to their new homes."""

    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED else None

    def create_module(self, spec):
        module = types.ModuleType(spec.name, f"Deprecated: the names of {spec.name} are in {', '.join(MOVED[spec.name])}.")
        module.__getattr__ = lambda name: resolve(spec.name, name, MOVED[spec.name])
        return module

    def exec_module(self, module):
        pass


_FINDER = _Finder()


def install() -> None:
    """Puts the finder on sys.meta_path (once); tf_ganimation/__init__.py calls it."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.append(_FINDER)
