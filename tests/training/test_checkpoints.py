"""checkpoints.py in one process: restore with fallback, cleaning up after a killed save, the writer of each
worker, and the seam killing_train.py kills at. Hard kills through scripts/train.py are in
test_trainer_faults.py."""

import os

import killing_train
import numpy as np
import pytest
import tensorflow as tf

from tf_ganimation.model import ganimation
from tf_ganimation.training import checkpoints

from conftest import tiny_gan


def test_restore_falls_back_to_the_previous_readable_checkpoint(tmp_path, capsys):
    gan = tiny_gan()
    manager = checkpoints.make_manager(gan, tmp_path, keep=3)
    variable = gan.generator.trainable_variables[0]
    saved = {}
    for step in (1, 2, 3):
        variable.assign(np.full(variable.shape, float(step), np.float32))
        manager.save(checkpoint_number=step)
        saved[step] = variable.numpy().copy()
    data_file = tmp_path / "ckpt-3.data-00000-of-00001"
    data_file.write_bytes(data_file.read_bytes()[: data_file.stat().st_size // 2])  # truncated
    (tmp_path / "ckpt-2.index").unlink()  # deleted
    variable.assign(np.zeros(variable.shape, np.float32))
    restored = checkpoints.restore_latest(ganimation.make_checkpoint(gan), tmp_path)
    assert restored == str(tmp_path / "ckpt-1")
    np.testing.assert_array_equal(variable.numpy(), saved[1])
    warnings = capsys.readouterr().err
    assert f"checkpoint {tmp_path / 'ckpt-3'} cannot be read" in warnings
    assert f"checkpoint {tmp_path / 'ckpt-2'} cannot be read" in warnings
    (tmp_path / "ckpt-1.index").unlink()
    with pytest.raises(checkpoints.CheckpointError, match="none of the checkpoints recorded in .* can be read"):
        checkpoints.restore_latest(ganimation.make_checkpoint(gan), tmp_path)
    assert checkpoints.restore_latest(ganimation.make_checkpoint(gan), tmp_path / "new") is None


def test_a_relative_run_folder_restores_its_checkpoints(tmp_path, monkeypatch):
    # The quick start's --workdir is relative (runs/quickstart): its checkpoints must resume from there.
    monkeypatch.chdir(tmp_path)
    gan = tiny_gan()
    checkpoints.make_manager(gan, "runs/x/checkpoints", keep=2).save(checkpoint_number=7)
    assert checkpoints.recorded("runs/x/checkpoints") == [os.path.join("runs/x/checkpoints", "ckpt-7")]
    assert checkpoints.restore_latest(ganimation.make_checkpoint(tiny_gan()), "runs/x/checkpoints") == (
        os.path.join("runs/x/checkpoints", "ckpt-7"))


def test_remove_unfinished_keeps_recorded_and_older_files(tmp_path):
    gan = tiny_gan()
    manager = checkpoints.make_manager(gan, tmp_path, keep=3)
    manager.save(checkpoint_number=4)
    for name in ("ckpt-6.index", "ckpt-6.data-00000-of-00001", "ckpt-2.index"):
        (tmp_path / name).write_bytes(b"partial")
    (tmp_path / "ckpt-8_temp").mkdir()
    removed = checkpoints.remove_unfinished(tmp_path)
    assert removed == ["ckpt-6.data-00000-of-00001", "ckpt-6.index", "ckpt-8_temp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint", "ckpt-2.index", "ckpt-4.data-00000-of-00001", "ckpt-4.index"]


def test_kill_hook_is_validated(monkeypatch):
    monkeypatch.setenv(killing_train.KILL_AT_VARIABLE, "checkpoint:4")
    assert killing_train.kill_point() == ("checkpoint", 4)
    monkeypatch.setenv(killing_train.KILL_AT_VARIABLE, "soon")
    with pytest.raises(ValueError, match="TF_GANIMATION_TEST_KILL_AT='soon' is invalid"):
        killing_train.kill_point()
    monkeypatch.delenv(killing_train.KILL_AT_VARIABLE)
    assert killing_train.kill_point() is None


def test_write_callbacks_run_after_the_files_and_before_the_state_file_records_them(tmp_path):
    # The moment killing_train.py kills a run at: a complete checkpoint that is not recorded yet.
    writer = checkpoints.CheckpointWriter(tf.train.Checkpoint(v=tf.Variable(1.0)), tmp_path, keep=2)
    writer.save(1)
    seen = []

    def callback():
        seen.append((sorted(path.name for path in tmp_path.glob("ckpt-2*")),
                     [os.path.basename(path) for path in checkpoints.recorded(tmp_path)]))

    options = tf.train.CheckpointOptions(experimental_write_callbacks=[callback])
    assert writer.save(2, options) == str(tmp_path / "ckpt-2")
    assert seen == [(["ckpt-2.data-00000-of-00001", "ckpt-2.index"], ["ckpt-1"])]
    assert [os.path.basename(path) for path in checkpoints.recorded(tmp_path)] == ["ckpt-1", "ckpt-2"]


def test_writer_saves_each_step_once_and_non_chief_workers_leave_nothing(tmp_path):
    variable = tf.Variable(1.0)
    chief = checkpoints.CheckpointWriter(tf.train.Checkpoint(v=variable), tmp_path, keep=2)
    assert chief.save(5) == str(tmp_path / "ckpt-5")
    assert chief.save(5) is None  # already saved at this step
    variable.assign(2.0)
    chief.save(6)
    assert [os.path.basename(path) for path in checkpoints.recorded(tmp_path)] == ["ckpt-5", "ckpt-6"]
    variable.assign(0.0)
    tf.train.Checkpoint(v=variable).restore(str(tmp_path / "ckpt-5")).assert_existing_objects_matched()
    assert float(variable.numpy()) == 1.0

    temp = tmp_path / checkpoints.WORKER_CHECKPOINT_DIR.format(task_id=1)
    temp.mkdir()
    (temp / "checkpoint").write_text("left by a killed worker")
    worker = checkpoints.CheckpointWriter(tf.train.Checkpoint(v=variable), tmp_path, keep=2, task_id=1,
                                          is_chief=False)
    assert not worker.is_chief and not temp.exists()  # the killed worker's state is gone
    assert worker.save(7) is None
    assert not temp.exists()
    assert [os.path.basename(path) for path in checkpoints.recorded(tmp_path)] == ["ckpt-5", "ckpt-6"]
