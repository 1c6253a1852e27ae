"""scripts/upgrade_run.py on a run folder written by the 0.1 release's code (commit 22fea1b, from git history)."""

import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap

import numpy as np
import pytest

from tf_ganimation.runs import loading

from conftest import PROJECT_ROOT

OLD_COMMIT = "22fea1b"
TINY_FLAGS = ["--flagfile=configs/quickstart.flags", "--image_size=16", "--generator_filters=8", "--critic_filters=8",
              "--critic_layers=2", "--generator_residual_blocks=1", "--batch_size=4", "--synthetic_images=24",
              "--max_steps=2", "--checkpoint_every=1", "--eval_every=0"]
# The generator's outputs on fixed inputs, as a run's own code computes them (either release's API).
EDITS_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    {import_line}
    generator, config = loading.load_generator(sys.argv[1])
    rng = np.random.default_rng(0)
    size = config.model.image_size
    image = rng.uniform(-1, 1, (3, size, size, 3)).astype(np.float32)
    aus = rng.uniform(0, 1, (3, 17)).astype(np.float32)
    outputs = generator(image, aus)
    np.save(sys.argv[2], np.concatenate([outputs["color"].numpy(), outputs["attention"].numpy()], -1))
""")


def _old_release(directory):
    """The tree of OLD_COMMIT, unpacked from git history into `directory`; skips when history is absent."""
    try:
        archive = subprocess.run(["git", "archive", "--format=tar", OLD_COMMIT], cwd=PROJECT_ROOT,
                                 capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"commit {OLD_COMMIT} is not in this clone's history (a shallow clone)")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    return directory


def _run(args, cwd, **kwargs):
    env = {**os.environ, "PYTHONPATH": os.fspath(cwd), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240,
                            **kwargs)
    return result


@pytest.mark.slow
def test_a_run_of_the_old_release_converts_loads_and_resumes_with_the_same_edits(tmp_path):
    old_tree = _old_release(tmp_path / "old")
    run = tmp_path / "run"
    trained = _run(["scripts/train.py", *TINY_FLAGS, f"--data_dir={tmp_path / 'faces'}", f"--workdir={run}"],
                   old_tree)
    assert trained.returncode == 0, trained.stderr[-2000:]
    old_config = json.loads((run / "config.json").read_text())
    assert old_config["run"]["jit_compile"] is False  # the old release wrote a boolean
    edits_script = tmp_path / "edits.py"
    edits_script.write_text(EDITS_SCRIPT.format(import_line="from tf_ganimation import workdir as loading"))
    assert _run([os.fspath(edits_script), os.fspath(run), os.fspath(tmp_path / "old.npy")], old_tree).returncode == 0
    # This release refuses the old run with a message that names the converter.
    with pytest.raises(ValueError, match="upgrade_run.py"):
        loading.load_generator(run)

    upgraded = _run(["scripts/upgrade_run.py", os.fspath(run)], PROJECT_ROOT)
    assert upgraded.returncode == 0, upgraded.stderr[-2000:]
    assert "Converted" in upgraded.stdout
    assert sorted(path.name for path in (run / "pre_0.3").iterdir()) == [
        "checkpoints", "config.json", "critic.weights.h5", "generator.weights.h5"]
    assert json.loads((run / "config.json").read_text())["run"]["jit_compile"] == "false"

    edits_script.write_text(EDITS_SCRIPT.format(import_line="from tf_ganimation.runs import loading"))
    assert _run([os.fspath(edits_script), os.fspath(run), os.fspath(tmp_path / "new.npy")],
                PROJECT_ROOT).returncode == 0
    difference = np.abs(np.load(tmp_path / "new.npy") - np.load(tmp_path / "old.npy")).max()
    assert difference <= 1e-6, difference
    # The final checkpoint holds the final weights, and the step the old run counted.
    generator, critic, _, step = loading.load_checkpoint(run)
    final, _ = loading.load_generator(run)
    assert step == 2
    for from_checkpoint, from_weights in zip(generator.weights, final.weights, strict=True):
        np.testing.assert_array_equal(from_checkpoint.numpy(), from_weights.numpy())
    assert loading.load_critic(run)[0].count_params() == critic.count_params()
    # Converting twice changes nothing; training resumes from the converted checkpoint.
    again = _run(["scripts/upgrade_run.py", os.fspath(run)], PROJECT_ROOT)
    assert again.returncode == 0 and "already in the 0.3 layout" in again.stdout
    resumed = _run(["scripts/train.py", *TINY_FLAGS, "--max_steps=3", "--mixed_precision=none",
                    f"--data_dir={tmp_path / 'faces'}", f"--workdir={run}"], PROJECT_ROOT)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resuming from step 2" in resumed.stderr
    assert loading.load_checkpoint(run)[3] == 3


def test_a_folder_that_is_not_a_run_is_a_user_error(tmp_path):
    result = _run(["scripts/upgrade_run.py", os.fspath(tmp_path)], PROJECT_ROOT)
    assert result.returncode == 2
    assert f"{tmp_path / 'config.json'} not found" in result.stderr
