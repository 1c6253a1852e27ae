"""TensorFlow Lite export of the generator for phones and edge GPUs, with a verified parity.

    result = tflite.convert_saved_model("models/ganimation/1", "ganimation_fp16.tflite")   # or:
    result = tflite.convert_generator(generator, 128, "ganimation_fp16.tflite", ConversionConfig("float16"))
    result.max_abs_error, result.model_path, result.metadata_path

writes the .tflite model and, next to it, `<name>.json` (AU order, input and output names, shapes,
dtypes and ranges, quantization mode, the parity error measured). The model has one signature,
`edit`, with the SavedModel's `edit` interface (export.py):

    inputs   images float32 [B, S, S, 3] in [0, 1], aus float32 [B, 17] in [0, 1] (action_units.AU_NAMES order)
    outputs  images float32 [B, S, S, 3] in [0, 1] (the edited faces), attention float32 [B, S, S, 1] in
             [0, 1] (1 keeps the input pixel), color float32 [B, S, S, 3] in [0, 1]

with a fixed batch B (1 by default): the GPU delegate needs static shapes. litert.TFLiteEditModel runs
it from Python like the SavedModel, at any batch (the edit contract of model/edit_model.py).

Conversion fails, writing nothing, when
- an operator would fall back to the CPU under the GPU delegate (gpu_compatibility.py, the static
  rules), unless `allow_cpu_fallback`;
- with `gpu_runtime` "auto" (where a Vulkan device is found) or "require": LiteRT's GPU accelerator,
  compiling the model alone on that device, leaves an operator to the CPU, crashes, or computes
  float32 outputs that differ from its CPU interpreter's (gpu_runtime.py; float16 arithmetic is measured
  and recorded in the JSON, not failed);
- the .tflite, run with LiteRT on fixed random inputs, differs from its source by more than
  PARITY_TOLERANCES on the [0, 1] scale; both run behind the edit contract, the .tflite as a
  litert.TFLiteEditModel, the source as a KerasEditModel or a backends.SavedModelEditModel.

The function converted is the source's edit traced at the fixed batch: `edit_model.edit_images` around
the Keras generator, or the SavedModel's `edit`.

Quantization modes: `none` (float32 weights and arithmetic), `float16` (float16 weights: half the size,
the default for GPUs; the CPU dequantizes them to float32, the GPU delegate reads them directly and
computes in float16 when its options allow precision loss), `dynamic_range` (int8 weights, a quarter of
the size; lossy, see the Notes).

Notes: parity runs on the CPU (LiteRT with XNNPACK), so a float16 model's error is that of its float16
weights; float16 arithmetic on a GPU adds its own and is not measured here. dynamic_range quantizes
weights to int8 per channel and activations on the fly; on random paper-size weights it changes output
pixels visibly (BENCHMARKS.md, TFLite), so it is checked only against a loose bound (0.5, which catches
a broken model, not a degraded one) and always logs a warning. Use float16 for GPUs and none (float32)
for exact CPU results. tflite_benchmark.py measures size, parity and latency of each mode.

Notes: the SavedModel's `estimate_aus` signature (the critic's AU head) is not converted, so a .tflite
model cannot estimate a face's AUs (TFLiteEditModel.estimate_aus is None; reenactment takes a run folder
or a SavedModel). A second signature would put the critic in a second subgraph that the GPU checks never
see (gpu_compatibility.py and flatbuffer.py read the main subgraph only, and the GPU runtime check runs
the first signature only, litert_gpu_process.py), and the browser page runs the model's default signature by
position (LiteRT.js `model.run(inputs)`, web_page/editor.js) and would download the critic's weights
for nothing; TFLiteEditModel and the `<name>.json` name one signature too. A critic for edge devices
would be its own .tflite with its own checks.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
import tempfile
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from absl import logging

from tf_ganimation.core import action_units, atomic
from tf_ganimation.export import backends, flatbuffer, gpu_compatibility, gpu_runtime, litert
from tf_ganimation.model import edit_model, networks
from tf_ganimation.runs import loading, run_folder

QUANTIZATIONS = ("none", "float16", "dynamic_range")
# Max abs error allowed between the .tflite and its source, on the [0, 1] image scale.
PARITY_TOLERANCES = {"none": 1e-4, "float16": 1e-2, "dynamic_range": 0.5}
SIGNATURE_KEY = "edit"
INPUT_DESCRIPTIONS = {
    "images": ("[0, 1]", "face crops, RGB"),
    "aus": ("[0, 1]", "target action unit intensities (OpenFace intensity / 5), in action_units order"),
}
OUTPUT_DESCRIPTIONS = {
    "images": ("[0, 1]", "edited faces: attention * images + (1 - attention) * color (paper Eq. 1)"),
    "attention": ("[0, 1]", "attention mask A; 1 keeps the input pixel"),
    "color": ("[0, 1]", "colour map C"),
}


@dataclasses.dataclass(frozen=True)
class ConversionConfig:
    """How a generator becomes a .tflite model.

    Attributes:
        quantization: one of QUANTIZATIONS; float16 (the default) for GPU delegates.
        batch_size: the model's fixed batch, >= 1.
        allow_cpu_fallback: write the model even if some operators would run on the CPU.
        parity_examples: random (image, AUs) pairs the parity check runs, >= 1.
        seed: seed of those inputs.
        gpu_runtime: the real GPU runtime's check (gpu_runtime.verify): "auto" where a Vulkan device is
            found, "require" (no device is an error), or "off" (the static rules only).
    """

    quantization: str = "float16"
    batch_size: int = 1
    allow_cpu_fallback: bool = False
    parity_examples: int = 4
    seed: int = 0
    gpu_runtime: str = "off"

    def __post_init__(self):
        if self.gpu_runtime not in gpu_runtime.RUNTIME_CHECKS:
            raise ValueError(f"gpu_runtime={self.gpu_runtime!r} is invalid: "
                             f"expected one of {gpu_runtime.RUNTIME_CHECKS}")
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization={self.quantization!r} is invalid: expected one of {QUANTIZATIONS}")
        for name in ("batch_size", "parity_examples"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} is invalid: expected an integer >= 1")


@dataclasses.dataclass(frozen=True)
class ConversionResult:
    """What a conversion wrote and measured.

    Attributes:
        model_path: the .tflite file.
        metadata_path: the `<name>.json` next to it (its content is `metadata`).
        size_bytes: size of the .tflite file.
        max_abs_error: {"images", "attention", "color"} -> max abs difference from the source, [0, 1] scale.
        tolerance: the bound those errors were checked against.
        unsupported_operators: the operators that would fall back to the CPU (empty unless allowed).
        gpu_runtime_reports: what LiteRT's GPU accelerator showed (gpu_runtime.GpuRuntimeReport), float32
            first; empty when the check was off or found no Vulkan device.
        metadata: the JSON written next to the model.
    """

    model_path: pathlib.Path
    metadata_path: pathlib.Path
    size_bytes: int
    max_abs_error: dict
    tolerance: float
    unsupported_operators: tuple
    metadata: dict
    gpu_runtime_reports: tuple = ()


class ParityError(ValueError):
    """The converted model's outputs differ from its source's by more than the tolerance."""


# === Functions to convert ===

def fixed_batch_function(function: Callable, image_size: int, num_aus: int, batch_size: int):
    """`function(images, aus)` traced at a fixed batch, the input of the conversion.

    Args:
        function: an edit (images float32 [B, S, S, 3] in [0, 1], aus float32 [B, num_aus] in [0, 1]) ->
            {"images", "attention", "color"} tensors in [0, 1]: `edit_model.edit_images` around a
            generator, or a SavedModel's `edit`; without validation ops (they would not convert to GPU
            operators).
        image_size: S, the side of the square images.
        num_aus: the AU vector's length.
        batch_size: B, the fixed batch of the input signature (the GPU delegate needs static shapes).

    Returns:
        A tf.function with inputs named `images` and `aus` and the outputs {"images", "attention", "color"}.
    """
    signature = [tf.TensorSpec([batch_size, image_size, image_size, 3], tf.float32, name="images"),
                 tf.TensorSpec([batch_size, num_aus], tf.float32, name="aus")]

    @tf.function(input_signature=signature)
    def edit(images, aus):
        outputs = function(images, aus)
        return {name: outputs[name] for name in litert.OUTPUT_NAMES}

    return edit


def convert_function(function, quantization: str) -> bytes:
    """Converts a fixed-shape tf.function (images, aus) -> {images, attention, color} to .tflite bytes.

    The function goes through a temporary SavedModel so that the .tflite keeps a signature (`edit`) with the
    named inputs and outputs.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization={quantization!r} is invalid: expected one of {QUANTIZATIONS}")
    concrete = function.get_concrete_function()
    module = tf.Module()
    # The variables the function reads, and not the Keras model owning them: saving a Keras model adds a
    # one-argument `serving_default` that cannot call the two-input generator.
    module.captured_variables = list(concrete.variables)
    with tempfile.TemporaryDirectory(prefix="tflite_conversion_") as temporary:
        tf.saved_model.save(module, temporary, signatures={SIGNATURE_KEY: concrete})
        converter = tf.lite.TFLiteConverter.from_saved_model(temporary, signature_keys=[SIGNATURE_KEY])
        if quantization in ("float16", "dynamic_range"):
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantization == "float16":
            converter.target_spec.supported_types = [tf.float16]
        return converter.convert()


# === Conversion with its checks ===

def convert_generator(generator: networks.Generator, image_size: int, out_path: os.PathLike | str,
                      config: ConversionConfig = ConversionConfig(),
                      source: str = "Keras generator") -> ConversionResult:
    """Converts a Keras generator; parity is measured against its KerasEditModel.

    Args:
        generator: a built networks.Generator.
        image_size: S, the side of the square images the model takes (a multiple of 4).
        out_path: the .tflite file to write; `<name>.json` goes next to it.
        config: quantization, batch and checks.
        source: how the metadata names the model's origin.

    Raises:
        gpu_compatibility.GpuCompatibilityError: operators would fall back to the CPU (and not allowed).
        gpu_runtime.GpuRuntimeError: the GPU runtime check failed (and CPU fallback not allowed).
        ParityError: the model's outputs differ from the generator's by more than the tolerance.
    """
    if not isinstance(image_size, int) or image_size < 4 or image_size % 4:
        raise ValueError(f"image_size={image_size!r} is invalid: expected a positive multiple of 4")
    function = fixed_batch_function(functools.partial(edit_model.edit_images, generator), image_size,
                                    generator.num_aus, config.batch_size)
    reference = edit_model.KerasEditModel(generator, image_size, source=source)
    return _convert_and_check(function, reference, out_path, config, source)


def convert_saved_model(saved_model_dir: os.PathLike | str, out_path: os.PathLike | str,
                        config: ConversionConfig = ConversionConfig()) -> ConversionResult:
    """Converts the `edit` function of a SavedModel written by export.py; parity is measured against it.

    Raises:
        FileNotFoundError: no saved_model.pb in `saved_model_dir`.
        ValueError: the SavedModel has no `edit` function (backends.SavedModelEditModel), and as
            convert_generator.
    """
    reference = backends.SavedModelEditModel(saved_model_dir)
    function = fixed_batch_function(reference.function, reference.image_size, reference.num_aus,
                                    config.batch_size)
    return _convert_and_check(function, reference, out_path, config, f"SavedModel {saved_model_dir} (edit)")


def convert_workdir(run_dir: os.PathLike | str, out_path: os.PathLike | str,
                    config: ConversionConfig = ConversionConfig()) -> ConversionResult:
    """Converts the trained generator of a training run's folder (runs.loading.load_generator)."""
    generator, run_config = loading.load_generator(run_dir)
    return convert_generator(generator, run_config.model.image_size, out_path, config,
                             source=f"training run {run_dir} ({run_folder.GENERATOR_WEIGHTS})")


def _convert_and_check(function, reference: edit_model.EditModel, out_path, config: ConversionConfig,
                       source: str) -> ConversionResult:
    out_path = pathlib.Path(out_path)
    if out_path.suffix != ".tflite":
        raise ValueError(f"{out_path}: the model file's name must end in .tflite")
    if out_path.exists() and out_path.is_dir():
        raise ValueError(f"{out_path} is a folder; expected a .tflite file name")
    content = convert_function(function, config.quantization)

    offenders = gpu_compatibility.unsupported_operators(content)
    if offenders and not config.allow_cpu_fallback:
        total = sum(flatbuffer.operator_counts(content).values())
        raise gpu_compatibility.GpuCompatibilityError(
            offenders, total, f"the model from {source} (nothing was written; allow_cpu_fallback, "
            "--allow_cpu_fallback, writes it anyway)")
    for operator in offenders:
        logging.warning("GPU delegate: operator %s would run on the CPU", operator)

    reports = gpu_runtime.verify(content, config.gpu_runtime, config.allow_cpu_fallback,
                                 f"the model from {source} (nothing was written)")
    converted = litert.TFLiteEditModel(content)
    max_abs_error = measure_parity(converted, reference, config)
    tolerance = PARITY_TOLERANCES[config.quantization]
    worst = max(max_abs_error.values())
    if not worst <= tolerance:  # also catches NaN
        raise ParityError(
            f"the {config.quantization} model differs from {source} by up to {worst:.3g} on the [0, 1] scale "
            f"({_format_errors(max_abs_error)}), above the tolerance {tolerance:g}; nothing was written")
    atomic.write_bytes(out_path, content)
    if config.quantization == "dynamic_range":
        logging.warning("dynamic_range quantization is lossy: output pixels differ by up to %.3g on the [0, 1] "
                        "scale; use float16 for GPUs or none for exact results", worst)

    metadata = model_metadata(out_path, converted, config, source, max_abs_error, tolerance, content, offenders)
    metadata["gpu_runtime"] = [report.as_dict() for report in reports]
    metadata_path = atomic.write_json(out_path.with_suffix(".json"), metadata, indent=2)
    return ConversionResult(out_path, metadata_path, out_path.stat().st_size, max_abs_error, tolerance,
                            tuple(offenders), metadata, reports)


def _format_errors(errors: dict) -> str:
    return ", ".join(f"{name} {value:.3g}" for name, value in errors.items())


# === Parity and metadata ===

def parity_inputs(count: int, image_size: int, num_aus: int = action_units.NUM_AUS, seed: int = 0):
    """Fixed random inputs: images float32 [count, S, S, 3] and aus float32 [count, num_aus], both in [0, 1]."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.0, 1.0, (count, image_size, image_size, 3)).astype(np.float32)
    aus = rng.uniform(0.0, 1.0, (count, num_aus)).astype(np.float32)
    return images, aus


def measure_parity(model: edit_model.EditModel, reference: edit_model.EditModel, config: ConversionConfig) -> dict:
    """Max abs difference per output between two edit models (the .tflite and its source), [0, 1] scale.

    The inputs are `parity_inputs(config.parity_examples, ...)`; with more examples than the model's batch,
    this also exercises TFLiteEditModel's slicing.
    """
    images, aus = parity_inputs(config.parity_examples, model.image_size, model.num_aus, config.seed)
    converted, expected = model.edit(images, aus), reference.edit(images, aus)
    return {name: float(np.max(np.abs(converted[name] - expected[name]))) for name in edit_model.EDIT_KEYS}


def model_metadata(model_path: pathlib.Path, model: litert.TFLiteEditModel, config: ConversionConfig, source: str,
                   max_abs_error: dict, tolerance: float, content: bytes, offenders) -> dict:
    """The `<name>.json` written next to a model: what a client needs to feed it and read it.

    `model` is the converted model, as written to `model_path`.
    """

    def tensor(name, details, descriptions):
        value_range, description = descriptions[name]
        return {"name": name, "shape": [int(d) for d in details["shape"]], "dtype": np.dtype(details["dtype"]).name,
                "range": value_range, "description": description}

    return {
        "model_file": model_path.name,
        "format": "TensorFlow Lite flatbuffer (run with LiteRT: ai_edge_litert)",
        "signature_key": model.signature_key,
        "quantization": config.quantization,
        "batch_size": model.batch_size,
        "image_size": model.image_size,
        "action_units": list(action_units.AU_NAMES),
        "inputs": [tensor(name, model.input_details[name], INPUT_DESCRIPTIONS) for name in litert.INPUT_NAMES],
        "outputs": [tensor(name, model.output_details[name], OUTPUT_DESCRIPTIONS) for name in litert.OUTPUT_NAMES],
        "source": source,
        "parity": {"max_abs_error": max_abs_error, "tolerance": tolerance, "scale": "[0, 1]",
                   "examples": config.parity_examples, "seed": config.seed, "runtime": "LiteRT CPU (XNNPACK)"},
        "gpu_delegate": {"runs_whole_graph": not offenders,
                         "unsupported_operators": [dataclasses.asdict(operator) for operator in offenders],
                         "operator_counts": flatbuffer.operator_counts(content)},
        "size_bytes": model_path.stat().st_size,
        "tensorflow_version": tf.__version__,
        "lossy": config.quantization == "dynamic_range",
    }
