"""Training throughput: images/s of the full train_step (n_critic critic updates + 1 generator update).

A `ThroughputRow` is one setting: networks, image size, precision, XLA and batch. `measure_row` builds
the GAN as training does (model.ganimation.make_gan inside a one_device strategy's scope) and times the
function training calls (trainer.make_step_function) on one random batch repeated by tf.data and
prefetched to the device, so that the input pipeline is not what is measured. `measure_rows` runs
rows in order of importance while a time budget lasts and marks the others skipped; `markdown_table`
prints them as BENCHMARKS.md's table. The figures are in BENCHMARKS.md.

A module of scripts/gpu_check.py, its only user (`import throughput`: Python searches a script's own
folder first), not a command of its own.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from tf_ganimation.core import action_units
from tf_ganimation.core.config import Config, DataConfig, ModelConfig, RunConfig
from tf_ganimation.model import ganimation
from tf_ganimation.training import trainer
from tf_ganimation.training.strategy import make_strategy

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
NETWORKS = {
    "paper": ModelConfig(),  # 128 px; generator 64 filters / 6 residual blocks, critic 64 filters / 6 layers
    "quick": ModelConfig(generator_filters=32, generator_residual_blocks=3, critic_filters=32, critic_layers=4),
    "tiny": ModelConfig(image_size=32, generator_filters=8, generator_residual_blocks=1, critic_filters=8,
                        critic_layers=3),
}
# Seconds a row takes besides its timed calls (building the GAN, the first call: trace, compile, run)
# before any row like it has been measured, by jit_compile: guesses for the paper-size step on one GPU
# (an XLA compile of it: 20-60 s), and for the tiny rows what a 2-core CPU takes (BENCHMARKS.md).
FIRST_CALL_GUESS = {True: 60.0, False: 30.0}
TINY_FIRST_CALL_GUESS = {True: 45.0, False: 15.0}


@dataclasses.dataclass(frozen=True)
class ThroughputRow:
    """One measured setting. `networks` names an entry of NETWORKS; precision one of PRECISIONS."""

    networks: str
    precision: str
    jit_compile: bool
    batch_size: int
    n_critic: int = 5

    def __post_init__(self):
        if self.networks not in NETWORKS:
            raise ValueError(f"networks={self.networks!r} is invalid: expected one of {tuple(NETWORKS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r} is invalid: expected one of {PRECISIONS}")

    @property
    def image_size(self) -> int:
        return NETWORKS[self.networks].image_size

    @property
    def label(self) -> str:
        return (f"{self.image_size} px {self.networks}, {self.precision}, {'XLA' if self.jit_compile else 'no XLA'}, "
                f"batch {self.batch_size}")

    def config(self) -> Config:
        """The training Config of this row (one_device; mixed_precision "none" for float32)."""
        return Config(model=NETWORKS[self.networks],
                      data=DataConfig(image_size=self.image_size, batch_size=self.batch_size, n_critic=self.n_critic),
                      run=RunConfig(strategy="one_device", jit_compile=str(self.jit_compile).lower(),
                                    mixed_precision="none" if self.precision == "float32" else self.precision))


def default_rows(large_batch: int = 200, tiny: bool = False, quick: bool = True) -> list[ThroughputRow]:
    """The rows of scripts/gpu_check.py, most important first: the paper's setting (128 px, paper-size
    networks, n_critic 5) as training runs it on a GPU (mixed_bfloat16 + XLA) at the paper's batch 25,
    the float32 baseline, the large batch, then every other precision and XLA combination; last, with
    `quick`, the smaller 128-px networks. The first row is the training run's setting.

    `tiny`: 32-px networks of 8 filters, n_critic 2, batches 2 and `large_batch`, three rows (for CPUs and tests).
    """
    if tiny:
        return [ThroughputRow("tiny", "float32", False, 2, n_critic=2),
                ThroughputRow("tiny", "mixed_bfloat16", False, large_batch, n_critic=2),
                ThroughputRow("tiny", "float32", True, 2, n_critic=2)]
    order = [("mixed_bfloat16", True, 25), ("float32", False, 25), ("mixed_bfloat16", True, large_batch),
             ("float32", True, 25), ("mixed_bfloat16", False, 25), ("mixed_float16", True, 25),
             ("float32", True, large_batch), ("mixed_float16", False, 25), ("float32", False, large_batch),
             ("mixed_bfloat16", False, large_batch), ("mixed_float16", True, large_batch),
             ("mixed_float16", False, large_batch)]
    rows = [ThroughputRow("paper", precision, jit, batch) for precision, jit, batch in order]
    return rows + ([ThroughputRow("quick", "mixed_bfloat16", True, 25)] if quick else [])


def random_element(batch_size: int, n_critic: int, image_size: int, seed: int = 0) -> dict[str, tf.Tensor]:
    """One training element as the pipeline emits it: "real_image" uint8 [B, n_critic, S, S, 3] in [0, 255],
    "real_aus" and "target_aus" float32 [B, n_critic, 17] in [0, 1]."""
    rng = np.random.default_rng(seed)
    aus = lambda: tf.constant(rng.uniform(0, 1, (batch_size, n_critic, action_units.NUM_AUS)), tf.float32)
    images = rng.integers(0, 256, (batch_size, n_critic, image_size, image_size, 3), dtype=np.uint8)
    return {"real_image": tf.constant(images), "real_aus": aus(), "target_aus": aus()}


def training_calls(gan, strategy, jit_compile: bool, steps_per_execution: int,
                   element: dict) -> tuple[Callable[[], tuple], int]:
    """(call, steps per call): call() runs trainer.make_step_function's function once, steps_per_execution
    train_steps on `element` repeated, and returns its (logs, skipped, stop)."""
    step = trainer.make_step_function(gan, strategy, jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    iterator = iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(element).repeat()))
    stop, steps = tf.constant(False), tf.constant(steps_per_execution, tf.int32)
    return (lambda: step(iterator, stop, steps)), steps_per_execution


def _memory_mb() -> tuple[str, float]:
    """("GPU peak", MB since the last reset) with a GPU, else ("host RSS", the process's resident MB now)."""
    if tf.config.list_physical_devices("GPU"):
        return "GPU peak", tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    with open("/proc/self/statm") as statm:
        return "host RSS", int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _reset_memory() -> None:
    if tf.config.list_physical_devices("GPU"):
        tf.config.experimental.reset_memory_stats("GPU:0")


def _finished(outputs) -> dict[str, np.ndarray]:
    """The call's loss terms copied to NumPy: the call's work is done once they are."""
    return {name: np.asarray(value) for name, value in outputs[0].items()}


def measure_row(row: ThroughputRow, seconds: float = 5.0, min_steps: int = 3, steps_per_execution: int = 1,
                clock: Callable[[], float] = time.perf_counter) -> dict:
    """Times `row`'s training calls: the first (trace + compile + run), then calls for `seconds` and at
    least `min_steps` more.

    Returns:
        The row's fields and: "status" "measured" (or "out of memory"), "seconds_per_step" (median of
        the timed calls after the first, divided by the train_steps per call), "images_per_second"
        (batch x n_critic / seconds_per_step), "first_call_seconds", "build_seconds", "timed_calls",
        "timed_seconds", "steps_per_call", "memory" ("GPU peak" or "host RSS") and "memory_mb",
        "finite_losses".
    """
    result = row_fields(row)
    keras.mixed_precision.set_global_policy(row.precision)
    try:
        strategy = make_strategy("one_device")
        started = clock()
        with strategy.scope():
            gan = ganimation.make_gan(row.config(), total_steps=10**6, decay_steps=0)
        result["build_seconds"] = clock() - started
        _reset_memory()
        element = random_element(row.batch_size, row.n_critic, row.image_size)
        call, steps_per_call = training_calls(gan, strategy, row.jit_compile, steps_per_execution, element)
        started = clock()
        logs = _finished(call())
        result["first_call_seconds"] = clock() - started
        times, deadline = [], clock() + seconds
        while len(times) < min_steps or clock() < deadline:
            started = clock()
            logs = _finished(call())
            times.append(clock() - started)
        seconds_per_step = statistics.median(times) / steps_per_call
        result.update(status="measured", seconds_per_step=seconds_per_step, timed_calls=len(times),
                      timed_seconds=sum(times), steps_per_call=steps_per_call,
                      images_per_second=row.batch_size * row.n_critic / seconds_per_step,
                      finite_losses=bool(all(np.isfinite(value).all() for value in logs.values())))
        result["memory"], result["memory_mb"] = _memory_mb()
    except tf.errors.ResourceExhaustedError:
        result["status"] = "out of memory"
    finally:
        keras.mixed_precision.set_global_policy("float32")
        gan = call = strategy = None  # the next row starts with this row's memory free
        gc.collect()
        keras.backend.clear_session()
    return result


def row_fields(row: ThroughputRow) -> dict:
    """What every result of `row` starts with: "row" (its label), its fields and "image_size"."""
    return {"row": row.label, **dataclasses.asdict(row), "image_size": row.image_size}


def estimated_seconds(row: ThroughputRow, measured: list[dict], first_call_guess: dict[bool, float],
                      seconds_per_row: float, min_steps: int) -> float:
    """What `row` will take: the most a measured row with the same networks and XLA setting took besides
    its timed calls (building, the first call, clearing up; else the guess), then its timed calls (at
    per-step times scaled from a measured batch)."""
    same = [result for result in measured if result["status"] == "measured"
            and result["networks"] == row.networks and result["jit_compile"] == row.jit_compile]
    first = max((r["row_seconds"] - r["timed_seconds"] for r in same), default=first_call_guess[row.jit_compile])
    per_call = max((r["seconds_per_step"] * r["steps_per_call"] * row.batch_size / r["batch_size"] for r in same),
                   default=0.0)
    return first + max(seconds_per_row, (min_steps + 1) * per_call)


def measure_rows(rows: list[ThroughputRow], measure: Callable[[ThroughputRow], dict], budget_seconds: float,
                 first_call_guess: dict[bool, float], seconds_per_row: float, min_steps: int,
                 clock: Callable[[], float] = time.monotonic, report: Callable[[str], None] = print) -> list[dict]:
    """`measure(row)` for each row, in order, that fits in what is left of `budget_seconds`.

    A row whose estimated_seconds do not fit is skipped (status "skipped: budget") and the next ones
    are still tried; a row that raises is kept as "failed: <error>" (its traceback goes to stderr).
    Returns one dict per row, in the rows' order; `report` gets a line per row.
    """
    started, results = clock(), []
    for row in rows:
        estimate = estimated_seconds(row, results, first_call_guess, seconds_per_row, min_steps)
        left = budget_seconds - (clock() - started)
        if estimate > left:
            results.append({**row_fields(row), "status": "skipped: budget", "estimated_seconds": estimate})
            report(f"skipped {row.label}: needs about {estimate:.0f} s, {max(left, 0):.0f} s of the budget left")
            continue
        row_started = clock()
        try:
            result = measure(row)
        except Exception as error:  # one broken row must not lose the others' figures
            traceback.print_exc(file=sys.stderr)
            result = {**row_fields(row), "status": f"failed: {type(error).__name__}: {str(error)[:120]}"}
        result["row_seconds"] = clock() - row_started
        results.append(result)
        figure = f"{result['images_per_second']:.1f} images/s" if result["status"] == "measured" else result["status"]
        report(f"{row.label}: {figure} ({result['row_seconds']:.0f} s)")
    return results


def training_steps(train_seconds: float, images_per_second: float, batch_size: int, n_critic: int,
                   overhead_seconds: float, steps_per_execution: int = 1) -> int:
    """max_steps for a run of about `train_seconds`, `overhead_seconds` of which are not train_steps;
    a multiple of steps_per_execution, at least one call."""
    steps = (train_seconds - overhead_seconds) * images_per_second / (batch_size * n_critic)
    calls = max(1, int(steps // steps_per_execution)) if math.isfinite(steps) else 1
    return calls * steps_per_execution


def evaluation_headline(metrics: dict) -> dict[str, float]:
    """The headline figures of scripts/evaluate.py's metrics.json (those present): the paired L1 of the
    edits and of the identity baseline, their ratio, the changed-region ratio, the mean attention and
    the cycle L1."""
    synthetic, consistency = metrics.get("synthetic", {}), metrics.get("consistency", {})
    paths = {"paired_l1": (synthetic, "edit", "l1"), "baseline_l1": (synthetic, "identity_baseline", "l1"),
             "l1_ratio": (synthetic, "l1_ratio_to_baseline"),
             "changed_l1_ratio": (synthetic, "regions", "changed", "l1_ratio_to_baseline"),
             "attention_mean": (synthetic, "attention", "mean"), "cycle_l1": (consistency, "cycle_l1")}
    headline = {}
    for name, (value, *keys) in paths.items():
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, (int, float)):
            headline[name] = float(value)
    return headline


def _describe_evaluation(headline: dict[str, float]) -> str:
    parts = []
    if "paired_l1" in headline and "baseline_l1" in headline:
        parts.append(f"paired L1 {headline['paired_l1']:.2f} vs identity {headline['baseline_l1']:.2f}")
    labels = {"l1_ratio": "ratio", "changed_l1_ratio": "changed-region ratio", "attention_mean": "attention mean",
              "cycle_l1": "cycle L1"}
    parts += [f"{label} {headline[name]:.3f}" for name, label in labels.items() if name in headline]
    return "; ".join(parts) or "no evaluation figures"


COLUMNS = ("setting", "images/s", "s/step", "first call s", "memory MB", "timed calls", "note")


def markdown_table(results: list[dict], training: dict | None = None) -> str:
    """A markdown table: a line per row of `results` (skipped and failed rows say so), and one for
    `training` ({"setting", "images_per_second", "seconds", "steps", "evaluation": evaluation_headline,
    "note"}) when given."""
    kinds = {result["memory"] for result in results if "memory" in result}
    header = [*COLUMNS[:4], f"memory MB ({', '.join(sorted(kinds))})" if kinds else COLUMNS[4], *COLUMNS[5:]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result in results:
        if result["status"] == "measured":
            cells = [f"{result['images_per_second']:.1f}", f"{result['seconds_per_step']:.4g}",
                     f"{result['first_call_seconds']:.1f}", f"{result['memory_mb']:.0f}", str(result["timed_calls"]),
                     f"steps per call: {result['steps_per_call']}"
                     + ("" if result["finite_losses"] else "; NaN losses")]
        else:
            cells = ["-"] * 5 + [result["status"]]
        lines.append(f"| {result['row']} | " + " | ".join(cells) + " |")
    if training is not None:
        rate = training.get("images_per_second")
        note = "; ".join(filter(None, [training.get("note"), _describe_evaluation(training.get("evaluation", {}))]))
        cells = [f"{rate:.1f}" if isinstance(rate, (int, float)) else "-", "-", "-", "-", "-", note]
        lines.append(f"| {training['setting']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
