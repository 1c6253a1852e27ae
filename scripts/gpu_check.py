"""Measures training on this machine's GPU in under 5 minutes; prints one markdown table and writes its JSON.

    python scripts/gpu_check.py --output=gpu_check.json              # one GPU: sized for under 5 minutes
    python scripts/gpu_check.py --train_seconds=0 --budget_seconds=900  # every row of the table, no training run
    python scripts/gpu_check.py --tiny --output=/tmp/gpu_check.json  # 32 px, tiny networks: 50-75 s on 2 CPU cores

First images/s of the full train_step (n_critic = 5 critic updates + 1 generator update; batch x
n_critic images) as training calls it (scripts/throughput.py), at 128 px with the paper-size networks,
in float32, mixed_bfloat16 and mixed_float16, with and without XLA, at batch 25 and --large_batch,
most important row first, with the first call's time (trace + compile + run) and the peak GPU memory.
A row is measured only while it fits in --budget_seconds less --train_seconds and --evaluation_seconds;
the others are listed as skipped. Meanwhile --synthetic_images 128-px faces are rendered
(scripts/make_synthetic_dataset.py); then scripts/train.py trains the paper-size model on them in the
first row's setting (mixed_bfloat16, XLA auto) for about --train_seconds, start-up and compile included
(max_steps from the first row's images/s), and scripts/evaluate.py scores it; both go in the table's
last line. Everything is written under --workdir (a new temporary folder by default): the faces, the
run, its flagfile and the two scripts' logs. Paste the table into BENCHMARKS.md with the date.
"""

import json
import os
import pathlib
import platform
import signal
import subprocess
import sys
import tempfile
import time

from tf_ganimation import cli  # before anything loads TensorFlow: cli readies its start (cli.py)

# isort: split
import tensorflow as tf
from absl import flags

from tf_ganimation.core import atomic

# isort: split
import throughput  # scripts/throughput.py, beside this script

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
FLAGS = flags.FLAGS
# name: (default, default with --tiny, help)
_NUMBERS = {
    "budget_seconds": (280.0, 75.0, "Wall time of the whole check; rows that would not fit are skipped."),
    "train_seconds": (150.0, 25.0, "Wall time of the scripts/train.py run, start-up and compile included; 0: none."),
    "evaluation_seconds": (30.0, 15.0, "Time kept for scripts/evaluate.py (and the end) out of the budget."),
    "seconds_per_row": (5.0, 1.0, "Timed calls of a row after its first call, for at least this long."),
    "min_timed_steps": (3, 2, "Timed calls of a row, at least."),
    "large_batch": (200, 4, "The large batch of the table (the paper's is 25)."),
    "steps_per_execution": (8, 2, "train_steps per call, in the table and in the training run (GPU auto: 8)."),
    "synthetic_images": (20000, 100, "Synthetic faces rendered for the training run."),
}
for _name, (_default, _, _help) in _NUMBERS.items():
    (flags.DEFINE_float if isinstance(_default, float) else flags.DEFINE_integer)(_name, _default, _help)
flags.DEFINE_bool("tiny", False, "32-px tiny networks, n_critic 2, batches 2 and 4, a few steps: for CPUs and tests.")
flags.DEFINE_string("output", None, "The JSON file of the table's numbers; default: <workdir>/gpu_check.json.")
flags.DEFINE_string("workdir", None,
                    "Folder for the faces, the training run and the logs; default: a new temporary one.")
# train.py's process start, data check of the faces and final save, beside its first call (seconds).
TRAIN_START_UP_SECONDS = {False: 25.0, True: 10.0}


def _setting(name: str):
    """A flag's value; with --tiny, the tiny default unless the flag was given."""
    default, tiny_default, _ = _NUMBERS[name]
    return tiny_default if FLAGS.tiny and not FLAGS[name].present else FLAGS[name].value


def _machine() -> dict:
    gpus = tf.config.list_physical_devices("GPU")
    return {"gpu": tf.config.experimental.get_device_details(gpus[0]).get("device_name") if gpus else None,
            "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "tensorflow": tf.__version__}


def _script(name: str, *args: str, log: pathlib.Path) -> subprocess.Popen:
    with open(log, "w") as output:
        return subprocess.Popen([sys.executable, str(PROJECT_ROOT / "scripts" / name), *args],
                                stdout=output, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)


def _finish(process: subprocess.Popen, timeout: float) -> tuple[int, bool]:
    """(exit status, whether it was stopped at `timeout`): SIGTERM first (train.py saves a checkpoint)."""
    try:
        return process.wait(timeout=max(timeout, 1)), False
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=120), True
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(), True


def _last_json_line(log: pathlib.Path) -> dict:
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("{") and line.endswith("}"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return {}


def _train_and_evaluate(row, measured: dict, rendering, data_dir: pathlib.Path, workdir: pathlib.Path) -> dict:
    """scripts/train.py on the rendered faces in `row`'s setting for about --train_seconds, then evaluate.py."""
    setting = f"training: scripts/train.py, {row.label}, synthetic faces"
    if rendering is not None and (status := rendering.wait()) != 0:
        return {"setting": setting, "note": f"rendering the faces failed (exit {status}, see {workdir / 'render.log'})"}
    train_seconds, steps_per_execution = _setting("train_seconds"), _setting("steps_per_execution")
    if measured["status"] == "measured":
        overhead = TRAIN_START_UP_SECONDS[FLAGS.tiny] + measured["row_seconds"] - measured["timed_seconds"]
        max_steps = throughput.training_steps(train_seconds, measured["images_per_second"], row.batch_size,
                                              row.n_critic, overhead, steps_per_execution)
    else:  # nothing to size it from: the deadline below stops it
        max_steps = 10**6
    run_dir, model = workdir / "run", throughput.NETWORKS[row.networks]
    flagfile = workdir / "train.flags"
    flagfile.write_text("\n".join([
        f"# scripts/gpu_check.py's training run: {row.label}, about {train_seconds:.0f} s.",
        f"--flagfile={PROJECT_ROOT / 'configs' / 'paper.flags'}",
        *(f"--{name}={getattr(model, name)}" for name in ("image_size", "generator_filters",
                                                         "generator_residual_blocks", "critic_filters",
                                                         "critic_layers")),
        f"--batch_size={row.batch_size}", f"--n_critic={row.n_critic}",
        f"--mixed_precision={'none' if row.precision == 'float32' else row.precision}", "--jit_compile=auto",
        f"--steps_per_execution={steps_per_execution}", f"--max_steps={max_steps}", "--cache_images",
        f"--synthetic_images={_setting('synthetic_images')}",
        f"--data_dir={data_dir}", f"--workdir={run_dir}", f"--checkpoint_every={max_steps}", "--keep_checkpoints=1",
        "--summary_every=100", f"--sample_every={max_steps}", "--num_samples=4", ""]))
    started = time.monotonic()
    status, stopped = _finish(_script("train.py", f"--flagfile={flagfile}", log=workdir / "train.log"),
                              timeout=max(1.2 * train_seconds + 10, 120))
    seconds = time.monotonic() - started
    result = _last_json_line(workdir / "train.log")
    training = {"setting": setting, "max_steps": max_steps, "steps": result.get("step"), "seconds": seconds,
                "images_per_second": result.get("images_per_second"), "exit_status": status, "flagfile": str(flagfile)}
    if "step" not in result:
        return {**training, "note": f"train.py failed (exit {status}, see {workdir / 'train.log'})"}
    note = f"{result['step']} steps in {seconds:.0f} s" + (" (stopped at the deadline)" if stopped else "")
    out_dir = run_dir / "gpu_check_evaluation"
    arguments = [f"--workdir={run_dir}", f"--out_dir={out_dir}"]
    if not (run_dir / "generator.weights.h5").is_file():  # stopped before the end: its last checkpoint
        arguments.append("--checkpoint=latest")
    if FLAGS.tiny:
        arguments += ["--max_images=8", "--num_targets=2"]
    started = time.monotonic()
    status, _ = _finish(_script("evaluate.py", *arguments, log=workdir / "evaluate.log"),
                        timeout=max(120.0, 4 * _setting("evaluation_seconds")))
    training["evaluation_seconds"] = time.monotonic() - started
    if status != 0 or not (out_dir / "metrics.json").is_file():
        return {**training, "note": f"{note}; evaluate.py failed (exit {status}, see {workdir / 'evaluate.log'})"}
    training["evaluation"] = throughput.evaluation_headline(json.loads((out_dir / "metrics.json").read_text()))
    return {**training, "note": f"{note}; evaluate.py {training['evaluation_seconds']:.0f} s"}


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}: every setting is a --flag")
    started = time.monotonic()
    for gpu in tf.config.list_physical_devices("GPU"):  # what this process does not use stays free for train.py
        tf.config.experimental.set_memory_growth(gpu, True)
    workdir = pathlib.Path(FLAGS.workdir or tempfile.mkdtemp(prefix="gpu_check_"))
    workdir.mkdir(parents=True, exist_ok=True)
    output = pathlib.Path(FLAGS.output or workdir / "gpu_check.json")
    rows = throughput.default_rows(_setting("large_batch"), tiny=FLAGS.tiny)
    train_seconds, data_dir = _setting("train_seconds"), workdir / f"faces_{rows[0].image_size}px"
    rendering = None  # --tiny: train.py renders its few faces itself (--synthetic_images)
    if train_seconds and not FLAGS.tiny and not (data_dir / "identities.json").is_file():  # during the table
        rendering = _script("make_synthetic_dataset.py", f"--out={data_dir}", f"--image_size={rows[0].image_size}",
                            f"--num_images={_setting('synthetic_images')}", "--seed=0", "--overwrite",
                            f"--num_workers={max(1, (os.cpu_count() or 2) // 2)}",
                            log=workdir / "render.log")
    settings = {name: _setting(name) for name in _NUMBERS} | {"tiny": FLAGS.tiny, "workdir": str(workdir)}
    report = {"date": time.strftime("%Y-%m-%d"), "machine": _machine(), "settings": settings}
    seconds_per_row, min_steps = settings["seconds_per_row"], settings["min_timed_steps"]
    table_budget = (settings["budget_seconds"] - train_seconds
                    - (settings["evaluation_seconds"] if train_seconds else 0) - (time.monotonic() - started))
    report["rows"] = throughput.measure_rows(
        rows, lambda row: throughput.measure_row(row, seconds_per_row, min_steps, settings["steps_per_execution"]),
        table_budget, throughput.TINY_FIRST_CALL_GUESS if FLAGS.tiny else throughput.FIRST_CALL_GUESS,
        seconds_per_row, min_steps, report=lambda line: print(line, file=sys.stderr, flush=True))
    atomic.write_json(output, report, indent=2)  # the table's figures are kept whatever training does
    if train_seconds:
        report["training"] = _train_and_evaluate(rows[0], report["rows"][0], rendering, data_dir, workdir)
    report["table"] = throughput.markdown_table(report["rows"], report.get("training"))
    report["wall_seconds"] = time.monotonic() - started
    atomic.write_json(output, report, indent=2)
    print(report["table"])
    print(f"wrote {output} in {report['wall_seconds']:.0f} s (faces, run and logs in {workdir})", file=sys.stderr)


if __name__ == "__main__":
    cli.run(main)
