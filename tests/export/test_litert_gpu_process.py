import numpy as np
import tensorflow as tf
from export_devices import first_device

from tf_ganimation.export import litert_gpu_process, vulkan_devices

# The delegate's log for a model with a 5-D tensor, as ai-edge-litert 2.3.0 writes it (trimmed).
SPLIT_LOG = """\
INFO: [delegate_webgpu.cc:342] Create WebGPU environment (use_low_power=0, enable_host_mapped_pointer=1)
I0000 00:00:1796610299.458973    9818 environment.cc:532] \
Selected adapter: SwiftShader Device (Subzero), arch=swiftshader
E0000 00:00:1796610193.217880    7360 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error
ERROR: Following operations are not supported by GPU delegate:
MEAN: Unknown layout.
MUL: Tensor dimensions must be less than 5. Reshape
MUL: Tensor dimensions must be less than 5. Reshape
No operations will run on the GPU, and all 3 operations will run on the CPU.
"""


def test_the_delegates_log_names_the_adapter_and_each_operator_kind_left_to_the_cpu():
    parsed = litert_gpu_process.parse_delegate_log(SPLIT_LOG)
    assert parsed["adapter"] == "SwiftShader Device (Subzero), arch=swiftshader"
    assert parsed["cpu_operators"] == [["MEAN", "Unknown layout."],
                                       ["MUL", "Tensor dimensions must be less than 5. Reshape"]]
    assert parsed["operators_on_cpu"] == 3
    assert parsed["builder_errors"] == []  # the CUDA stub's error is not the delegate's


def test_a_partial_split_and_kernel_errors_are_read():
    log = ("ERROR: Following operations are not supported by GPU delegate:\nTOPK_V2: Operation is not supported.\n"
           "5 operations will run on the GPU, and the remaining 2 operations will run on the CPU.\n"
           "E0000 00:00:1796610313.696144   10076 gpu_model_builder.cc:4114] TopK requires src tensor C dimension "
           "to be divisible by 4.\n"
           "E0000 00:00:1796610336.859645   10587 environment.cc:105] Validation error: [Invalid CommandBuffer]\n")
    parsed = litert_gpu_process.parse_delegate_log(log)
    assert parsed["cpu_operators"] == [["TOPK_V2", "Operation is not supported."]] and parsed["operators_on_cpu"] == 2
    assert parsed["builder_errors"] == ["TopK requires src tensor C dimension to be divisible by 4.",
                                        "Validation error: [Invalid CommandBuffer]"]
    assert "adapter" not in parsed


def _convert(function, spec) -> bytes:
    traced = tf.function(function, input_signature=[spec])
    return tf.lite.TFLiteConverter.from_concrete_functions([traced.get_concrete_function()], traced).convert()


def test_a_model_runs_in_the_child_against_the_cpu_interpreter():
    device = first_device()
    content = _convert(lambda x: tf.nn.relu(x - 0.5) * 3.0, tf.TensorSpec([1, 4, 4, 8], tf.float32, name="x"))
    inputs = {"x": np.linspace(0.0, 1.0, 128, dtype=np.float32).reshape(1, 4, 4, 8)}
    result = litert_gpu_process.run(content, device.icd_paths, enforce_f32=True, inputs=inputs, repeats=2)
    assert result["compiled"] and result["operators_on_cpu"] == 0 and not result.get("crashed")
    np.testing.assert_allclose(result["outputs"][0], (np.maximum(inputs["x"] - 0.5, 0) * 3.0).ravel()[:64], atol=1e-5)
    assert list(result["max_abs_error"]) == ["Identity"] and result["max_abs_error"]["Identity"] < 1e-5
    assert result["compile_seconds"] > 0 and result["run_seconds"] > 0


def test_a_crash_of_the_runtime_is_reported_with_its_signal():
    device = first_device()
    content = _convert(lambda x: tf.math.cumsum(x, axis=-1) * 2.0, tf.TensorSpec([1, 4, 4, 8], tf.float32))
    result = litert_gpu_process.run(content, device.icd_paths, enforce_f32=True)
    assert result["crashed"] == "signal 4 (SIGILL)"
    assert result["compiled"] is False and "max_abs_error" not in result  # it died compiling


def test_no_vulkan_driver_fails_to_compile_without_crashing(tmp_path):
    content = _convert(lambda x: x * 2.0, tf.TensorSpec([1, 4], tf.float32))
    result = litert_gpu_process.run(content, (str(tmp_path / "no_driver.json"),), enforce_f32=True)
    assert result["compiled"] is False and not result.get("crashed") and result["error"]
    assert vulkan_devices.SWIFTSHADER_ICD.endswith("vk_swiftshader_icd.json")
