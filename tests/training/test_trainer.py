import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tf_ganimation.core.config import Config, DataConfig, OptimizerConfig, RunConfig
from tf_ganimation.runs import run_folder
from tf_ganimation.synthetic import synthetic_dataset
from tf_ganimation.training import trainer

from conftest import PROJECT_ROOT, TINY_MODEL, scalar_summaries


@pytest.fixture(scope="module")
def synthetic_faces(tmp_path_factory) -> pathlib.Path:
    data_dir = tmp_path_factory.mktemp("faces")
    synthetic_dataset.make_dataset(os.fspath(data_dir), num_images=40, image_size=32, seed=0, progress=False)
    return data_dir


def _train_script(*args, timeout=300):
    command = [sys.executable, "scripts/train.py", "--flagfile=configs/smoke.flags", *args]
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout)


def _tiny_config(data_dir, synthetic_images=0, **run) -> Config:
    return Config(model=TINY_MODEL, optimizer=OptimizerConfig(epochs=2, decay_epochs=1),
                  data=DataConfig(data_dir=os.fspath(data_dir), image_size=32, batch_size=4, n_critic=2,
                                  shuffle_buffer=16, synthetic_images=synthetic_images),
                  run=RunConfig(strategy="one_device", summary_every=1, sample_every=1, num_samples=1, **run))


def test_train_renders_the_synthetic_faces_it_is_asked_for_and_scores_them(tmp_path, capsys):
    data_dir = tmp_path / "faces"
    config = _tiny_config(data_dir, synthetic_images=20, max_steps=1, eval_every=1)
    result = trainer.train(config, tmp_path / "run")
    assert result["step"] == 1 and result["interrupted_by"] == 0
    assert f"Rendering 20 synthetic faces into {data_dir} ..." in capsys.readouterr().err
    assert (data_dir / synthetic_dataset.IDENTITIES_FILE).is_file()
    assert sorted(scalar_summaries(tmp_path / "run" / "logs")["evaluation/l1_ratio_to_baseline"]) == [1]
    assert run_folder.load_config(tmp_path / "run") == config
    assert (tmp_path / "run" / run_folder.GENERATOR_WEIGHTS).is_file()


def test_eval_every_on_data_that_is_not_synthetic_is_ignored_with_a_message(ganimation_dir, capsys):
    assert trainer._make_probe(_tiny_config(ganimation_dir, eval_every=5)) is None
    assert (f"--eval_every=5 is ignored: {ganimation_dir} is not a synthetic dataset (no identities.json)"
            in capsys.readouterr().err)
    assert trainer._make_probe(_tiny_config(ganimation_dir)) is None  # eval_every=0: not asked


def test_a_workdir_of_other_network_sizes_is_not_resumed(synthetic_faces, tmp_path):
    config = _tiny_config(synthetic_faces, max_steps=1)
    wider = dataclasses.replace(config, model=dataclasses.replace(TINY_MODEL, generator_filters=16))
    run_folder.save_config(wider, tmp_path)
    with pytest.raises(ValueError, match=r"holds a run with other network sizes \(generator_filters differ"):
        trainer.train(config, tmp_path)


@pytest.mark.slow
def test_train_script_smoke_run_then_resume(synthetic_faces, tmp_path):
    run_dir = tmp_path / "run"
    first = _train_script(f"--data_dir={synthetic_faces}", f"--workdir={run_dir}", "--max_steps=2", "--eval_every=2")
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads(first.stderr.strip().splitlines()[-1])["step"] == 2
    assert (run_dir / "flags.txt").read_text().count("--max_steps=2") == 1
    assert (run_dir / "checkpoints" / "ckpt-2.index").is_file()
    assert list((run_dir / "logs").glob("events.out.tfevents.*"))
    # Evaluated at step 2 against the synthetic faces' true renderings.
    ratios = scalar_summaries(run_dir / "logs")["evaluation/l1_ratio_to_baseline"]
    assert sorted(ratios) == [2] and 0.0 < ratios[2] < 100.0
    assert "step 2 evaluation: l1_ratio_to_baseline" in first.stderr
    assert (run_dir / "samples" / "step_0000002.png").is_file()
    assert (run_dir / "generator.weights.h5").is_file()

    second = _train_script(f"--data_dir={synthetic_faces}", f"--workdir={run_dir}", "--max_steps=4")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Resuming from step 2" in second.stderr
    result = json.loads(second.stderr.strip().splitlines()[-1])
    assert result["step"] == 4
    assert all(np.isfinite(value) for key, value in result.items() if key.endswith("loss"))
    assert (run_dir / "checkpoints" / "ckpt-4.index").is_file()


@pytest.mark.slow
def test_train_script_reports_user_errors_in_one_paragraph(tmp_path):
    missing = _train_script(f"--data_dir={tmp_path / 'nowhere'}", f"--workdir={tmp_path / 'run'}")
    assert missing.returncode == 2
    assert "Traceback" not in missing.stderr
    assert "error: the data folder" in missing.stderr and "nowhere" in missing.stderr
    bad_flag = _train_script("--batch_size=0", f"--workdir={tmp_path / 'run'}")
    assert bad_flag.returncode == 2 and "error: batch_size=0 is invalid" in bad_flag.stderr
