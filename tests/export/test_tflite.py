import json
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema

from tf_ganimation.core import action_units
from tf_ganimation.core.config import Config, DataConfig
from tf_ganimation.export import backends, gpu_compatibility, litert, saved_model, tflite
from tf_ganimation.model import edit_model, networks
from tf_ganimation.runs import run_folder

from conftest import PROJECT_ROOT, TINY_MODEL, tiny_generator


@pytest.fixture(scope="module")
def generator():
    return tiny_generator(0)


@pytest.fixture(scope="module")
def conversions(generator, tmp_path_factory):
    out = tmp_path_factory.mktemp("tflite")
    return {quantization: tflite.convert_generator(generator, 32, out / f"tiny_{quantization}.tflite",
                                                   tflite.ConversionConfig(quantization=quantization))
            for quantization in tflite.QUANTIZATIONS}


@pytest.mark.parametrize("quantization,tolerance", [("none", 1e-4), ("float16", 1e-2), ("dynamic_range", 0.5)])
def test_each_mode_converts_within_its_parity_tolerance(conversions, quantization, tolerance):
    result = conversions[quantization]
    assert result.model_path.is_file() and result.metadata_path == result.model_path.with_suffix(".json")
    assert result.tolerance == tolerance
    assert set(result.max_abs_error) == {"images", "attention", "color"}
    assert max(result.max_abs_error.values()) <= tolerance
    assert result.unsupported_operators == ()
    assert not list(result.model_path.parent.glob(".*.tmp"))


@pytest.mark.parametrize("quantization", ["none", "float16"])
def test_the_parity_figures_are_the_tflite_edit_model_against_the_keras_one(generator, conversions, quantization):
    result = conversions[quantization]
    config = tflite.ConversionConfig(quantization=quantization)
    converted = litert.TFLiteEditModel(result.model_path)
    # Remeasured from the written file against a fresh KerasEditModel: the same figures, to the bit.
    assert tflite.measure_parity(converted, edit_model.KerasEditModel(generator, 32), config) == result.max_abs_error
    assert all(error > 0.0 for error in result.max_abs_error.values())  # a measurement, not two copies of one model


def test_the_converted_function_is_the_edit_at_a_fixed_batch(generator):
    function = tflite.fixed_batch_function(lambda images, aus: edit_model.edit_images(generator, images, aus),
                                           32, 17, batch_size=2)
    (images, aus), _ = function.get_concrete_function().structured_input_signature
    assert (images.name, images.shape.as_list(), aus.name, aus.shape.as_list()) == ("images", [2, 32, 32, 3],
                                                                                    "aus", [2, 17])
    inputs = tflite.parity_inputs(2, 32, seed=5)
    outputs = function(*inputs)
    assert list(outputs) == ["images", "attention", "color"]
    expected = edit_model.KerasEditModel(generator, 32).edit(*inputs)
    for name in outputs:
        np.testing.assert_allclose(outputs[name].numpy(), expected[name], atol=1e-6)


def test_quantization_shrinks_the_file_and_costs_precision(conversions):
    size = {name: result.size_bytes for name, result in conversions.items()}
    error = {name: max(result.max_abs_error.values()) for name, result in conversions.items()}
    assert size["float16"] < 0.6 * size["none"] and size["dynamic_range"] < 0.4 * size["none"]
    assert error["none"] < error["float16"] < error["dynamic_range"]


def _signature_tensors(model_path):
    """{input/output name: (shape, dtype)} read from the flatbuffer's signature, without LiteRT."""
    model = schema.ModelT.InitFromPackedBuf(model_path.read_bytes(), 0)
    (signature,) = model.signatureDefs
    tensors = model.subgraphs[signature.subgraphIndex].tensors
    dtypes = {schema.TensorType.FLOAT32: "float32"}

    def read(maps):
        return {m.name.decode(): (list(tensors[m.tensorIndex].shape), dtypes[tensors[m.tensorIndex].type])
                for m in maps}

    return signature.signatureKey.decode(), read(signature.inputs), read(signature.outputs)


def test_the_json_matches_the_models_tensors(conversions):
    result = conversions["float16"]
    metadata = json.loads(result.metadata_path.read_text())
    assert metadata == result.metadata
    key, inputs, outputs = _signature_tensors(result.model_path)
    assert key == metadata["signature_key"] == "edit"
    assert inputs == {"images": ([1, 32, 32, 3], "float32"), "aus": ([1, 17], "float32")}
    assert outputs == {"images": ([1, 32, 32, 3], "float32"), "attention": ([1, 32, 32, 1], "float32"),
                       "color": ([1, 32, 32, 3], "float32")}
    assert {t["name"]: (t["shape"], t["dtype"]) for t in metadata["inputs"]} == inputs
    assert {t["name"]: (t["shape"], t["dtype"]) for t in metadata["outputs"]} == outputs
    assert all(t["range"] == "[0, 1]" for t in metadata["inputs"] + metadata["outputs"])
    assert metadata["action_units"] == list(action_units.AU_NAMES) and metadata["action_units"][8] == "AU12"
    assert (metadata["quantization"], metadata["batch_size"], metadata["image_size"]) == ("float16", 1, 32)
    assert metadata["parity"]["max_abs_error"] == result.max_abs_error
    assert metadata["parity"]["tolerance"] == 1e-2
    assert metadata["gpu_delegate"]["runs_whole_graph"] is True
    assert metadata["size_bytes"] == result.model_path.stat().st_size


def test_a_trained_generators_instance_norms_keep_their_scale_and_offset_operators(generator, conversions,
                                                                                   tmp_path):
    # Untrained, every gamma is 1 and every beta 0, and the converter drops the multiplications and additions
    # they make; training moves them, and each instance norm gets back 4 operators: the MUL by gamma, the ADD
    # of beta and the DEQUANTIZE of each float16 weight. The GPU delegate must take that graph too.
    trained = networks.build_generator(TINY_MODEL)
    trained.set_weights(generator.get_weights())
    rng = np.random.default_rng(5)
    norm_weights = [weight for weight in trained.weights if weight.path.endswith(("/gamma", "/beta"))]
    norms = len(norm_weights) // 2
    assert norms == 7  # encoder 3, one residual block 2, decoder 2
    for weight in norm_weights:
        initial = 1.0 if weight.path.endswith("/gamma") else 0.0
        weight.assign(initial + rng.normal(0.0, 0.1, weight.shape).astype(np.float32))
    result = tflite.convert_generator(trained, 32, tmp_path / "trained_fp16.tflite")
    assert result.unsupported_operators == () and result.metadata["gpu_delegate"]["runs_whole_graph"] is True
    untrained = conversions["float16"].metadata["gpu_delegate"]["operator_counts"]
    counts = result.metadata["gpu_delegate"]["operator_counts"]
    added = {name: counts.get(name, 0) - untrained.get(name, 0) for name in counts.keys() | untrained.keys()}
    added = {name: difference for name, difference in added.items() if difference}
    assert added == {"MUL": norms, "ADD": norms, "DEQUANTIZE": 2 * norms}


def test_saved_model_and_tflite_agree(generator, tmp_path):
    version_dir = saved_model.export_generator(generator, tmp_path / "models", version=1, model_config=TINY_MODEL,
                                          warmup=False)
    result = tflite.convert_saved_model(version_dir, tmp_path / "ganimation_fp16.tflite")
    assert result.metadata["quantization"] == "float16" and "SavedModel" in result.metadata["source"]
    assert max(result.max_abs_error.values()) <= 1e-2
    # Independently of the conversion's own check: other inputs, batch 3 through the batch-1 model.
    images, aus = tflite.parity_inputs(3, 32, seed=11)
    loaded = tf.saved_model.load(str(version_dir))  # kept: `edit` reads its variables
    expected = loaded.edit(images, aus)
    converted = litert.TFLiteEditModel(result.model_path).edit(images, aus)
    for name in litert.OUTPUT_NAMES:
        np.testing.assert_allclose(converted[name], expected[name].numpy(), atol=1e-2)


def test_an_export_with_the_critic_converts_its_edit_alone(expressive_run_dir, tmp_path):
    version_dir = saved_model.export_from_workdir(expressive_run_dir, tmp_path / "models")
    result = tflite.convert_saved_model(version_dir, tmp_path / "edit.tflite", tflite.ConversionConfig("none"))
    converted = litert.TFLiteEditModel(result.model_path)  # refuses a model of several signatures
    assert converted.signature_key == result.metadata["signature_key"] == "edit"
    images, aus = tflite.parity_inputs(2, 32, seed=4)
    assert converted.estimate_aus(images) is None  # the critic stays in the SavedModel (tflite.py, Notes)
    np.testing.assert_allclose(converted.edit(images, aus)["images"],
                               backends.SavedModelEditModel(version_dir).edit(images, aus)["images"], atol=1e-4)


def test_a_training_run_converts_from_its_workdir(generator, tmp_path):
    run_folder.save_config(Config(model=TINY_MODEL, data=DataConfig(image_size=32)), tmp_path)
    generator.save_weights(tmp_path / run_folder.GENERATOR_WEIGHTS)
    result = tflite.convert_workdir(tmp_path, tmp_path / "run.tflite", tflite.ConversionConfig(quantization="none"))
    images, aus = tflite.parity_inputs(2, 32, seed=3)
    expected = edit_model.KerasEditModel(generator, 32).edit(images, aus)["images"]
    np.testing.assert_allclose(litert.TFLiteEditModel(result.model_path).edit(images, aus)["images"], expected,
                               atol=1e-4)
    assert "training run" in result.metadata["source"]


def test_a_parity_failure_writes_nothing(generator, tmp_path, monkeypatch):
    monkeypatch.setitem(tflite.PARITY_TOLERANCES, "none", 1e-12)
    out = tmp_path / "strict.tflite"
    with pytest.raises(tflite.ParityError, match=r"above the tolerance 1e-12; nothing was written"):
        tflite.convert_generator(generator, 32, out, tflite.ConversionConfig(quantization="none"))
    assert list(tmp_path.iterdir()) == []


def test_cpu_fallback_fails_the_conversion_unless_allowed(generator, tmp_path, monkeypatch):
    offender = gpu_compatibility.UnsupportedOperator(5, "BROADCAST_TO", "not an operator the GPU delegate runs")
    monkeypatch.setattr(tflite.gpu_compatibility, "unsupported_operators", lambda content: [offender])
    out = tmp_path / "fallback.tflite"
    with pytest.raises(gpu_compatibility.GpuCompatibilityError, match=r"(?s)--allow_cpu_fallback.*#5 BROADCAST_TO"):
        tflite.convert_generator(generator, 32, out)
    assert list(tmp_path.iterdir()) == []
    result = tflite.convert_generator(generator, 32, out, tflite.ConversionConfig(allow_cpu_fallback=True))
    assert result.unsupported_operators == (offender,)
    assert result.metadata["gpu_delegate"]["runs_whole_graph"] is False
    assert result.metadata["gpu_delegate"]["unsupported_operators"][0]["op_name"] == "BROADCAST_TO"


def test_bad_settings_name_the_value(generator, tmp_path):
    with pytest.raises(ValueError, match=r"quantization='int8' is invalid"):
        tflite.ConversionConfig(quantization="int8")
    with pytest.raises(ValueError, match=r"batch_size=0 is invalid"):
        tflite.ConversionConfig(batch_size=0)
    with pytest.raises(ValueError, match=r"model.bin: the model file.s name must end in \.tflite"):
        tflite.convert_generator(generator, 32, tmp_path / "model.bin")
    with pytest.raises(FileNotFoundError, match="saved_model.pb not found"):
        tflite.convert_saved_model(tmp_path, tmp_path / "x.tflite")
    module = tf.Module()
    module.double = tf.function(lambda x: 2.0 * x, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "other"))
    with pytest.raises(ValueError, match="has no `edit"):
        tflite.convert_saved_model(tmp_path / "other", tmp_path / "x.tflite")


@pytest.mark.slow
def test_the_script_converts_a_run_and_reports_user_errors(generator, tmp_path):
    run_folder.save_config(Config(model=TINY_MODEL, data=DataConfig(image_size=32)), tmp_path)
    generator.save_weights(tmp_path / run_folder.GENERATOR_WEIGHTS)
    script = str(PROJECT_ROOT / "scripts" / "convert_tflite.py")
    out = tmp_path / "run_fp16.tflite"
    done = subprocess.run([sys.executable, script, f"--workdir={tmp_path}", f"--out={out}"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"wrote {out}" in done.stdout
    assert re.search(r"GPU delegate: (\d+) of \1 operators supported \(the whole graph\)", done.stdout), done.stdout
    assert json.loads(out.with_suffix(".json").read_text())["quantization"] == "float16"
    done = subprocess.run([sys.executable, script, f"--out={out}"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "error: pass exactly one of --saved_model" in done.stderr
    assert "Traceback" not in done.stderr
