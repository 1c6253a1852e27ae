"""The step runner (run_step.py in a bundle) in its own Python with numpy and jax: it compiles the
bundle's loop, draws the state, times calls with the state fed back, and prints one JSON object."""

import json
import math
import os
import statistics
import subprocess
import sys

import numpy as np
import pytest

from conftest import PROJECT_ROOT, TINY_STEP_SETTING

sys.path.insert(0, os.fspath(PROJECT_ROOT / "scripts"))  # as when scripts/export_step.py runs
import step_bundle  # noqa: E402


def _run(python, bundle, *args, timeout=300):
    return subprocess.run([python, str(bundle / step_bundle.RUNNER_FILE), *map(str, args)],
                          capture_output=True, text=True, check=False, timeout=timeout)


@pytest.mark.slow
def test_the_runner_times_the_loop_with_the_state_fed_back(jax_python, tiny_step_bundle, tmp_path):
    result = _run(jax_python, tiny_step_bundle, tiny_step_bundle / TINY_STEP_SETTING, "--warmup=1", "--repeats=2",
                  f"--outputs={tmp_path / 'first.npz'}")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["program"] == "loop" and report["train_steps_per_call"] == 2 and report["timed_calls"] == 2
    assert report["device"].startswith("cpu") and report["compile_seconds"] > 0
    # images/s is batch x n_critic (4) over the median milliseconds per train_step
    assert report["ms_per_step"] == pytest.approx(statistics.median(report["ms_per_step_calls"]), abs=2e-3)
    assert math.isclose(report["images_per_second"], 4 / (report["ms_per_step"] / 1000), rel_tol=1e-2)
    assert report["program_memory_mib"] > 0 and report["finite_losses"] is True
    assert set(report["first_losses"]) == set(report["last_losses"]) and len(report["first_losses"]) == 11
    # the first call made two train_steps; three calls later the state has moved, so the losses have
    first = dict(np.load(tmp_path / "first.npz"))
    assert first["gan/train_steps"] == 2
    assert report["first_losses"]["critic_loss"] == pytest.approx(float(first["loss/critic_loss"]))
    assert report["last_losses"]["critic_loss"] != report["first_losses"]["critic_loss"]
    assert report["skipped_updates"] == {"critic": 0.0, "generator": 0.0}


@pytest.mark.slow
def test_the_runner_rejects_a_folder_that_is_not_a_bundle(jax_python, tmp_path):
    result = subprocess.run([jax_python, str(step_bundle.RUNNER_SOURCE), str(tmp_path)], capture_output=True,
                            text=True, check=False, timeout=120)
    assert result.returncode == 2 and f"{tmp_path} is not a step bundle: it has no spec.json" in result.stderr
