"""Tests for scripts/throughput.py: scripts/gpu_check.py's rows, their timing, budget and table."""

import math
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import PROJECT_ROOT, TINY_MODEL

sys.path.insert(0, os.fspath(PROJECT_ROOT / "scripts"))  # as when scripts/gpu_check.py runs
import throughput  # noqa: E402
from throughput import ThroughputRow  # noqa: E402

TINY_ROW = ThroughputRow("tiny", "float32", False, batch_size=2, n_critic=2)


def test_measure_row_times_the_training_calls_and_reports_images_per_second_from_them():
    result = throughput.measure_row(TINY_ROW, seconds=0.0, min_steps=3, steps_per_execution=2)
    assert result["status"] == "measured" and result["finite_losses"]
    assert result["steps_per_call"] == 2 and result["timed_calls"] >= 3
    assert result["images_per_second"] > 0 and math.isfinite(result["images_per_second"])
    # batch 2 x n_critic 2 images per train_step, at the median step time
    assert result["images_per_second"] == pytest.approx(4 / result["seconds_per_step"])
    # the median call is one of the timed calls, and the first call (trace + run) is not among them
    assert result["seconds_per_step"] * 2 <= result["timed_seconds"]
    assert result["first_call_seconds"] > result["seconds_per_step"] and result["build_seconds"] > 0
    assert result["memory"] in ("GPU peak", "host RSS") and result["memory_mb"] > 0
    assert result["row"] == "32 px tiny, float32, no XLA, batch 2" and result["image_size"] == 32
    assert keras.mixed_precision.global_policy().name == "float32"


def test_measure_row_reports_out_of_memory_and_restores_the_float32_policy(monkeypatch):
    def out_of_memory(*args, **kwargs):
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"  # set before the GAN is built
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    monkeypatch.setattr(throughput.ganimation, "make_gan", out_of_memory)
    result = throughput.measure_row(ThroughputRow("tiny", "mixed_bfloat16", True, 4, n_critic=2))
    assert result["status"] == "out of memory" and "images_per_second" not in result
    assert keras.mixed_precision.global_policy().name == "float32"


def test_random_element_is_a_uint8_training_element_of_the_rows_shapes():
    element = throughput.random_element(batch_size=3, n_critic=2, image_size=16, seed=1)
    assert element["real_image"].dtype == tf.uint8 and element["real_image"].shape == (3, 2, 16, 16, 3)
    assert int(tf.reduce_max(element["real_image"])) > 200 and int(tf.reduce_min(element["real_image"])) < 50
    for key in ("real_aus", "target_aus"):
        aus = element[key].numpy()
        assert element[key].dtype == tf.float32 and aus.shape == (3, 2, 17) and aus.min() >= 0 and aus.max() <= 1
    assert not np.array_equal(element["real_aus"], element["target_aus"])


def test_default_rows_put_the_paper_setting_first_and_cover_every_precision_xla_and_batch():
    rows = throughput.default_rows(large_batch=200)
    assert rows[0] == ThroughputRow("paper", "mixed_bfloat16", True, 25, 5)
    paper = {(row.precision, row.jit_compile, row.batch_size) for row in rows if row.networks == "paper"}
    assert paper == {(p, jit, b) for p in throughput.PRECISIONS for jit in (False, True) for b in (25, 200)}
    assert rows[-1].networks == "quick" and all(row.image_size == 128 and row.n_critic == 5 for row in rows)
    assert throughput.NETWORKS["paper"] == throughput.NETWORKS["paper"].__class__()  # the paper's defaults
    tiny = throughput.default_rows(large_batch=4, tiny=True)
    assert [row.batch_size for row in tiny] == [2, 4, 2] and all(row.n_critic == 2 for row in tiny)
    assert throughput.NETWORKS["tiny"] == TINY_MODEL


def test_a_row_is_the_training_config_of_its_setting_and_checks_its_names():
    config = ThroughputRow("paper", "float32", True, 200).config()
    assert (config.run.mixed_precision, config.run.jit_compile, config.run.strategy) == ("none", "true", "one_device")
    assert (config.data.batch_size, config.data.n_critic, config.data.image_size) == (200, 5, 128)
    assert ThroughputRow("tiny", "mixed_float16", False, 2).config().run.mixed_precision == "mixed_float16"
    with pytest.raises(ValueError, match="precision='float64' is invalid"):
        ThroughputRow("paper", "float64", False, 25)
    with pytest.raises(ValueError, match="networks='huge' is invalid"):
        ThroughputRow("huge", "float32", False, 25)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _fake_measure(clock, row_seconds=10.0):
    def measure(row):
        clock.now += row_seconds
        return {**throughput.row_fields(row), "status": "measured", "build_seconds": 1.0,
                "first_call_seconds": 7.0, "timed_seconds": 1.0, "timed_calls": 4, "steps_per_call": 1,
                "seconds_per_step": 0.25, "images_per_second": row.batch_size * row.n_critic / 0.25}
    return measure


def test_measure_rows_skips_the_rows_that_no_longer_fit_in_the_budget_and_tries_the_next():
    clock, lines = FakeClock(), []
    rows = [ThroughputRow("tiny", "float32", False, 2), ThroughputRow("tiny", "float32", True, 2),
            ThroughputRow("tiny", "mixed_bfloat16", False, 2), ThroughputRow("tiny", "mixed_float16", False, 2)]
    results = throughput.measure_rows(rows, _fake_measure(clock), budget_seconds=25.0,
                                      first_call_guess={True: 100.0, False: 5.0}, seconds_per_row=1.0,
                                      min_steps=3, clock=clock, report=lines.append)
    # row 1: guess 5 + 1 fits 25; row 2 (XLA): 100 + 1 does not; row 3: 9 s untimed (as row 1) + 1 fits
    # the 15 left; row 4: the same 10 do not fit the 5 left.
    assert [result["status"] for result in results] == ["measured", "skipped: budget", "measured", "skipped: budget"]
    assert [result["row"] for result in results] == [row.label for row in rows]
    assert results[1]["estimated_seconds"] == pytest.approx(101.0) and results[3]["estimated_seconds"] == 10.0
    assert results[0]["row_seconds"] == 10.0 and clock.now == 20.0
    assert len(lines) == 4 and lines[1].startswith("skipped 32 px tiny, float32, XLA, batch 2: needs about 101 s")


def test_estimated_seconds_scale_the_timed_calls_with_the_batch():
    measured = [{**throughput.row_fields(TINY_ROW), "status": "measured", "row_seconds": 12.0, "timed_seconds": 2.0,
                 "seconds_per_step": 0.5, "steps_per_call": 2, "batch_size": 2}]
    large = ThroughputRow("tiny", "mixed_bfloat16", False, 8, n_critic=2)
    # 10 s untimed, then (3 + 1) calls of 2 steps of 0.5 s x 8 / 2
    assert throughput.estimated_seconds(large, measured, {True: 99, False: 99}, 1.0, 3) == pytest.approx(10 + 16)
    assert throughput.estimated_seconds(ThroughputRow("tiny", "float32", True, 2), measured,
                                        {True: 99, False: 1}, 1.0, 3) == 100


def test_a_row_that_raises_is_kept_as_failed_and_the_others_still_run(capsys):
    clock = FakeClock()
    measure = _fake_measure(clock)

    def flaky(row):
        if row.precision == "mixed_float16":
            raise RuntimeError("no float16 kernels")
        return measure(row)

    rows = [ThroughputRow("tiny", "mixed_float16", False, 2), TINY_ROW]
    results = throughput.measure_rows(rows, flaky, 100.0, {True: 1.0, False: 1.0}, 1.0, 3, clock=clock,
                                      report=lambda line: None)
    assert results[0]["status"] == "failed: RuntimeError: no float16 kernels" and results[1]["status"] == "measured"
    assert "Traceback" in capsys.readouterr().err


def test_markdown_table_has_a_line_per_row_with_every_column_and_the_training_line():
    clock = FakeClock()
    measured = {**_fake_measure(clock)(TINY_ROW), "memory": "GPU peak", "memory_mb": 1536.0, "finite_losses": True}
    skipped = {**throughput.row_fields(ThroughputRow("tiny", "float32", True, 2)), "status": "skipped: budget"}
    training = {"setting": "training: scripts/train.py", "images_per_second": 2500.0, "note": "800 steps in 150 s",
                "evaluation": {"paired_l1": 2.5, "baseline_l1": 2.25, "l1_ratio": 1.111, "attention_mean": 0.5}}
    table = throughput.markdown_table([measured, skipped], training)
    lines = table.splitlines()
    assert len(lines) == 2 + 2 + 1
    assert lines[0] == ("| setting | images/s | s/step | first call s | memory MB (GPU peak) | timed calls | note |")
    assert all(line.count("|") == len(throughput.COLUMNS) + 1 for line in lines)
    assert lines[2] == "| 32 px tiny, float32, no XLA, batch 2 | 16.0 | 0.25 | 7.0 | 1536 | 4 | steps per call: 1 |"
    assert lines[3].endswith("| - | - | - | - | - | skipped: budget |")
    assert lines[4].startswith("| training: scripts/train.py | 2500.0 |")
    assert "800 steps in 150 s; paired L1 2.50 vs identity 2.25; ratio 1.111; attention mean 0.500" in lines[4]


def test_training_steps_fill_the_time_left_after_the_overhead_in_whole_calls():
    # (150 - 50) s x 1000 images/s / (25 x 5) images per step = 800 steps
    assert throughput.training_steps(150, 1000.0, 25, 5, overhead_seconds=50) == 800
    assert throughput.training_steps(150, 1000.0, 25, 5, overhead_seconds=50, steps_per_execution=7) == 798
    assert throughput.training_steps(30, 1000.0, 25, 5, overhead_seconds=50, steps_per_execution=8) == 8
    assert throughput.training_steps(150, math.nan, 25, 5, 50, steps_per_execution=2) == 2


def test_evaluation_headline_reads_the_figures_evaluate_writes():
    metrics = {"synthetic": {"edit": {"l1": 2.11, "psnr": 30.0}, "identity_baseline": {"l1": 2.13},
                             "l1_ratio_to_baseline": 0.992, "attention": {"mean": 0.8},
                             "regions": {"changed": {"l1_ratio_to_baseline": 0.86}}},
               "consistency": {"cycle_l1": 3.5}}
    assert throughput.evaluation_headline(metrics) == {
        "paired_l1": 2.11, "baseline_l1": 2.13, "l1_ratio": 0.992, "changed_l1_ratio": 0.86,
        "attention_mean": 0.8, "cycle_l1": 3.5}
    # a dataset without true renderings has only the consistency figures
    assert throughput.evaluation_headline({"consistency": {"cycle_l1": 3.5}}) == {"cycle_l1": 3.5}
