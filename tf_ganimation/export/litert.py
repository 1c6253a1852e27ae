"""Running a converted generator (.tflite) with LiteRT, exactly as one runs the SavedModel's `edit`.

    model = TFLiteEditModel("ganimation_fp16.tflite", num_threads=2)
    outputs = model.edit(images, aus)      # images float32 [N, S, S, 3] in [0, 1], aus float32 [N, 17] in [0, 1]
    outputs["images"]                     # the edited faces, float32 [N, S, S, 3] in [0, 1]

The model's fixed batch (1 by default, see tflite.py) does not limit N: larger batches run in slices of
the fixed batch and the last slice is padded. LiteRT applies its default CPU delegate (XNNPACK).

This is the only module of the package that imports `ai_edge_litert` (the LiteRT runtime, pinned in
requirements.txt), and only when a model is loaded.
"""

from __future__ import annotations

import importlib
import os
import pathlib

import numpy as np

from tf_ganimation.model.edit_model import EditModel

INPUT_NAMES = ("images", "aus")
OUTPUT_NAMES = ("images", "attention", "color")


def _import_interpreter():
    try:
        return importlib.import_module("ai_edge_litert.interpreter").Interpreter
    except ImportError as error:
        raise ImportError(
            f"running .tflite models needs the LiteRT runtime ({error}); install it with "
            "`pip install ai-edge-litert==2.3.0` (it is pinned in requirements.txt)") from error


class TFLiteEditModel(EditModel):
    """A .tflite generator behind the edit contract (model/edit_model.py).

    Args:
        model: path of the .tflite file written by tflite.py (or its bytes).
        num_threads: CPU threads for LiteRT, >= 1; None lets LiteRT choose.
        signature_key: the signature to run; None takes the model's only one.

    Call:
        images: float32 [N, S, S, 3] in [0, 1], S the model's image size, N >= 1.
        aus: float32 [N, 17] in [0, 1], the target expression of each image.

    Returns:
        {"images": float32 [N, S, S, 3] in [0, 1], the edited faces;
         "attention": float32 [N, S, S, 1] in [0, 1], 1 keeps the input pixel;
         "color": float32 [N, S, S, 3] in [0, 1], the colour map}.

    Raises:
        FileNotFoundError: `model` is a path that does not exist.
        ValueError: the model does not have the images/aus -> images/attention/color signature, or a
            call's inputs do not have the model's shapes.

    Notes: like `edit`, no validation: values outside [0, 1] or NaN go through unchanged (the SavedModel's
    `serving_default` clips and checks them). Not thread safe: use one instance per thread. estimate_aus
    is None: the .tflite holds the generator only (tflite.py, Notes, says why it has no critic).
    """

    kind = "tflite"

    def __init__(self, model: str | os.PathLike | bytes, num_threads: int | None = None,
                 signature_key: str | None = None):
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ValueError(f"num_threads={num_threads!r} is invalid: expected an integer >= 1 or None")
        interpreter_class = _import_interpreter()
        if isinstance(model, (bytes, bytearray)):
            self.source = "<bytes>"
            self._interpreter = interpreter_class(model_content=bytes(model), num_threads=num_threads)
        else:
            path = pathlib.Path(model)
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path} not found: expected a .tflite model (scripts/convert_tflite.py writes one)")
            self.source = str(path)
            self._interpreter = interpreter_class(model_path=str(path), num_threads=num_threads)
        signatures = self._interpreter.get_signature_list()
        if signature_key is None and len(signatures) != 1:
            raise ValueError(f"{self.source} has {len(signatures)} signatures ({', '.join(signatures) or 'none'}); "
                             "pass signature_key (models from scripts/convert_tflite.py have exactly one)")
        self.signature_key = signature_key or next(iter(signatures))
        if self.signature_key not in signatures:
            raise ValueError(f"{self.source} has no signature {self.signature_key!r}; it has {', '.join(signatures)}")
        self._runner = self._interpreter.get_signature_runner(self.signature_key)
        self.input_details = self._runner.get_input_details()
        self.output_details = self._runner.get_output_details()
        if sorted(self.input_details) != sorted(INPUT_NAMES) or sorted(self.output_details) != sorted(OUTPUT_NAMES):
            raise ValueError(
                f"{self.source} signature {self.signature_key!r} has inputs {sorted(self.input_details)} and outputs "
                f"{sorted(self.output_details)}; a GANimation generator has inputs {list(INPUT_NAMES)} and outputs "
                f"{list(OUTPUT_NAMES)}")
        image_shape = tuple(int(d) for d in self.input_details["images"]["shape"])
        self.batch_size, self.image_size = image_shape[0], image_shape[1]  # slices of the fixed batch
        self.num_aus = int(self.input_details["aus"]["shape"][-1])

    def _edit(self, images: np.ndarray, aus: np.ndarray) -> dict[str, np.ndarray]:
        used, batch = images.shape[0], self.batch_size
        if used < batch:  # the model's batch is fixed: pad the last slice with copies of its last row
            images = np.concatenate([images, np.repeat(images[-1:], batch - used, axis=0)])
            aus = np.concatenate([aus, np.repeat(aus[-1:], batch - used, axis=0)])
        outputs = self._runner(images=np.ascontiguousarray(images), aus=np.ascontiguousarray(aus))
        return {name: np.array(outputs[name][:used], np.float32) for name in OUTPUT_NAMES}

    def __repr__(self) -> str:
        return (f"TFLiteEditModel({self.source!r}, batch_size={self.batch_size}, image_size={self.image_size}, "
                f"signature_key={self.signature_key!r})")


def __getattr__(name: str):
    if name == "TFLiteGenerator":  # the name of TFLiteEditModel before 0.2
        import warnings

        warnings.warn("tf_ganimation.export.litert.TFLiteGenerator is TFLiteEditModel now; the old name goes in "
                      "the next release", DeprecationWarning, stacklevel=2)
        return TFLiteEditModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
