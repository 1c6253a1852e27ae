"""tf_ganimation/export/tflite_benchmark.py: the latency loop and the benchmark's rows (tiny generator)."""

import pytest

from tf_ganimation.export import tflite_benchmark

from conftest import TINY_MODEL


def test_latency_calls_the_function_warmup_plus_runs_times():
    calls = []
    latency = tflite_benchmark.latency_ms(lambda: calls.append(1), runs=5, warmup=2)
    assert len(calls) == 7 and 0.0 <= latency["min_ms"] <= latency["median_ms"]
    with pytest.raises(ValueError, match="runs=0"):
        tflite_benchmark.latency_ms(lambda: None, runs=0)


def test_the_benchmark_reports_the_keras_function_then_each_mode(tmp_path):
    rows = tflite_benchmark.benchmark(TINY_MODEL, tmp_path, ("float16",), num_threads=1, runs=1, warmup=0)
    assert [row["name"] for row in rows] == ["keras tf.function (SavedModel edit)", "tflite float16"]
    assert 0.0 < rows[1]["max_abs_error"] <= 1e-2 and rows[1]["size_mb"] > 0.0
    assert [path.name for path in tmp_path.glob("*.tflite")] == ["benchmark_float16.tflite"]
