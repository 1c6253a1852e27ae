"""Faults in a training run (trainer.py, and the non-finite guard of ganimation.py): hard kills and resume,
NaN/Inf losses, fuzzed data and a malicious AU pickle through scripts/train.py (the kills inside a
checkpoint save through killing_train.py). Unreadable checkpoints, in one process, are in
test_checkpoints.py; the guard's decisions in test_faults.py.

The slow tests share one uninterrupted, deterministic 6-step reference run of configs/smoke.flags on
synthetic faces fuzzed with every kind of bad file and AU vector (test_inventory.add_fuzzed_examples).
"""

import hashlib
import json
import os
import pathlib
import pickle
import shutil
import signal
import subprocess
import sys

import h5py
import killing_train
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tf_ganimation.core.config import DataConfig
from tf_ganimation.data import inventory
from tf_ganimation.synthetic import synthetic_dataset
from tf_ganimation.training import checkpoints

from conftest import PROJECT_ROOT, random_batch, tiny_gan

# The fuzzing of tests/data/test_inventory.py; pytest puts tests/data on the path only when it collects that folder.
sys.path.insert(0, os.fspath(PROJECT_ROOT / "tests" / "data"))
from test_inventory import add_fuzzed_examples  # noqa: E402

# === The non-finite guard, in one process ===


def _state(gan):
    """Every weight and every optimizer variable except the iteration counts, as numpy arrays."""
    variables = [*gan.generator.weights, *gan.critic.weights]
    for optimizer in (gan.generator_optimizer, gan.critic_optimizer):
        variables += [v for v in optimizer.variables if "iteration" not in v.path]
    return [np.array(v.numpy()) for v in variables]


def test_train_step_with_a_nan_image_in_every_sub_batch_changes_nothing():
    gan = tiny_gan()
    batch = random_batch(2, 2, 32)
    batch["real_image"][1, :, 5, 5, 0] = np.nan  # one pixel of one example, in both sub-batches
    before = _state(gan)
    logs = tf.function(gan.train_step)({key: tf.constant(value) for key, value in batch.items()})
    assert not np.isfinite(float(logs["critic_loss"])) and not np.isfinite(float(logs["generator_loss"]))
    assert all(np.array_equal(a, b) for a, b in zip(before, _state(gan)))
    assert {name: float(tracker.result()) for name, tracker in gan.skipped_updates.items()} == {
        "critic": 2.0, "generator": 1.0}
    assert (int(gan.critic_optimizer.iterations), int(gan.generator_optimizer.iterations)) == (2, 1)
    # The next finite batch trains as usual.
    gan.train_step({key: tf.constant(value) for key, value in random_batch(2, 2, 32, seed=1).items()})
    after = _state(gan)
    assert all(np.isfinite(value).all() for value in after)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))


def test_train_step_skips_only_the_update_whose_sub_batch_is_not_finite():
    gan = tiny_gan()
    batch = random_batch(2, 2, 32)
    batch["real_aus"][0, 0, 3] = np.inf  # critic update 0's AU target; update 1 and the generator are fine
    gan.train_step({key: tf.constant(value) for key, value in batch.items()})
    assert {name: float(tracker.result()) for name, tracker in gan.skipped_updates.items()} == {
        "critic": 1.0, "generator": 0.0}
    assert all(np.isfinite(value).all() for value in _state(gan))


# === Through scripts/train.py ===


def _command(*args, script="scripts/train.py"):
    return [sys.executable, script, "--flagfile=configs/smoke.flags", "--deterministic", *args]


def _env(**extra):
    env = {key: value for key, value in os.environ.items() if key != killing_train.KILL_AT_VARIABLE}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def _train(*args, timeout=300, kill_at=None):
    """scripts/train.py; with kill_at ("step:N" or "checkpoint:N"), through killing_train.py."""
    if kill_at is None:
        command, env = _command(*args), _env()
    else:
        command, env = _command(*args, script=killing_train.__file__), _env(**{killing_train.KILL_AT_VARIABLE: kill_at})
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def _weights(path) -> dict:
    """Every array of a Keras .weights.h5 file, by its path inside the file."""
    arrays = {}

    def collect(name, item):
        if isinstance(item, h5py.Dataset):
            arrays[name] = item[()]

    with h5py.File(path, "r") as file:
        file.visititems(collect)
    return arrays


def _digests(folder: pathlib.Path) -> dict:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.iterdir()) if path.is_file()}


@pytest.fixture(scope="module")
def fuzzed_faces(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzzed") / "faces"
    synthetic_dataset.make_dataset(os.fspath(root), num_images=40, image_size=32, seed=0, progress=False)
    face = Image.open(sorted((root / "imgs").iterdir())[0]).convert("RGB")
    good, expected = add_fuzzed_examples(root, face)
    return root, good, expected


@pytest.fixture(scope="module")
def reference_run(fuzzed_faces, tmp_path_factory):
    """An uninterrupted deterministic run to step 6: (workdir, completed process)."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    result = _train(f"--data_dir={fuzzed_faces[0]}", f"--workdir={run_dir}", "--max_steps=6")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result


@pytest.mark.slow
def test_fuzzed_dataset_trains_and_reports_every_bad_item_by_kind(fuzzed_faces, reference_run):
    _, good, expected = fuzzed_faces
    run_dir, result = reference_run
    assert json.loads(result.stderr.strip().splitlines()[-1])["step"] == 6
    total_skipped = sum(expected.values())
    assert f"skipped: {total_skipped}" in result.stderr
    for reason, count in expected.items():
        assert f"skipped, {reason}: {count} (" in result.stderr, reason
    config = json.loads((run_dir / "config.json").read_text())
    examples = inventory.load_examples(DataConfig(**config["data"]))
    assert set(good) <= set(examples.train.ids)  # grayscale, CMYK, 16-bit, wrong extension: all kept


@pytest.mark.slow
def test_hard_kills_resume_from_the_last_complete_checkpoint_and_end_with_the_same_weights(
        fuzzed_faces, reference_run, tmp_path):
    data_dir, run_dir = fuzzed_faces[0], tmp_path / "run"
    args = (f"--data_dir={data_dir}", f"--workdir={run_dir}", "--max_steps=6")
    checkpoint_dir = run_dir / "checkpoints"

    # 1. SIGKILL from outside as soon as checkpoint 2 is recorded (during step 3 or its sample grid).
    process = subprocess.Popen(_command(*args), cwd=PROJECT_ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               text=True, env=_env())
    for line in process.stderr:
        if "Saved checkpoint" in line and line.rstrip().endswith("ckpt-2"):
            process.send_signal(signal.SIGKILL)
            break
    process.communicate(timeout=300)
    assert process.returncode == -signal.SIGKILL
    assert [os.path.basename(path) for path in checkpoints.recorded(checkpoint_dir)] == ["ckpt-2"]

    # 2. Killed right after step 4, before anything due at step 4 (its checkpoint, its sample grid) is written.
    killed = _train(*args, kill_at="step:4")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert "Resuming from step 2" in killed.stderr and "TF_GANIMATION_TEST_KILL_AT=step:4: killing" in killed.stderr
    assert "step 3/6" in killed.stderr and "step 4/6" not in killed.stderr  # step 3's summary, not step 4's
    assert not list(checkpoint_dir.glob("ckpt-4*")) and not (run_dir / "samples" / "step_0000004.png").exists()
    assert [os.path.basename(path) for path in checkpoints.recorded(checkpoint_dir)] == ["ckpt-2"]

    # 3. Killed inside checkpoint 4's save: data and index written, the state file not yet updated.
    killed = _train(*args, kill_at="checkpoint:4")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert "Resuming from step 2" in killed.stderr
    assert (checkpoint_dir / "ckpt-4.index").is_file() and (checkpoint_dir / "ckpt-4.data-00000-of-00001").is_file()
    assert [os.path.basename(path) for path in checkpoints.recorded(checkpoint_dir)] == ["ckpt-2"]

    # 4. The restart resumes from checkpoint 2, never the unrecorded 4, and finishes.
    finished = _train(*args)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "Removed the files of an interrupted checkpoint save" in finished.stderr
    assert f"Resuming from step 2 ({checkpoint_dir / 'ckpt-2'})" in finished.stderr
    assert json.loads(finished.stderr.strip().splitlines()[-1])["step"] == 6

    for name in ("generator.weights.h5", "critic.weights.h5"):
        resumed, uninterrupted = _weights(run_dir / name), _weights(reference_run[0] / name)
        assert sorted(resumed) == sorted(uninterrupted) and len(resumed) >= 8
        differences = {key: float(np.abs(resumed[key] - uninterrupted[key]).max()) for key in resumed}
        assert max(differences.values()) <= 1e-6, differences  # measured: 0.0, bit for bit


@pytest.mark.slow
def test_nan_loss_skips_up_to_the_limit_then_stops_naming_the_step_and_keeps_the_checkpoint(
        fuzzed_faces, reference_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(reference_run[0], run_dir)
    before = _digests(run_dir / "checkpoints")
    weights_before = (run_dir / "generator.weights.h5").read_bytes()
    # A learning rate of 1e30 turns the weights to ~1e30 after one update, and the losses to NaN.
    result = _train(f"--data_dir={fuzzed_faces[0]}", f"--workdir={run_dir}", "--max_steps=9",
                    "--critic_learning_rate=1e30", "--generator_learning_rate=1e30", "--max_nonfinite_skips=1")
    assert result.returncode == 3, result.stderr[-3000:]
    assert "Resuming from step 6" in result.stderr
    assert "warning: skipped the batch of step 7: non-finite loss terms: critic_loss=nan" in result.stderr
    assert "[1 of at most 1]" in result.stderr
    message = result.stderr[result.stderr.index("error: training stopped"):].replace("\n", " ")
    assert "error: training stopped at step 8: non-finite loss terms: critic_loss=nan" in message
    assert "generator_loss=nan" in message and "after skipping 1 such steps" in message
    assert f"the last checkpoint, {run_dir / 'checkpoints' / 'ckpt-6'}, is kept as it was" in message
    assert "Traceback" not in result.stderr
    assert _digests(run_dir / "checkpoints") == before
    assert (run_dir / "generator.weights.h5").read_bytes() == weights_before


class _RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.slow
def test_train_script_refuses_a_pickle_that_would_run_a_command(tmp_path):
    root = tmp_path / "evil"
    (root / "imgs").mkdir(parents=True)
    Image.new("RGB", (32, 32), (90, 60, 30)).save(root / "imgs" / "face.jpg")
    marker = tmp_path / "pwned"
    (root / "aus_openface.pkl").write_bytes(pickle.dumps({"face": _RunsCommand(marker)}, protocol=2))
    result = _train(f"--data_dir={root}", f"--workdir={tmp_path / 'run'}")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "error:" in result.stderr and "aus_openface.pkl" in result.stderr and "system" in result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists()
