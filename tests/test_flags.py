import dataclasses
import subprocess
import sys

import pytest

from tf_ganimation import flags
from tf_ganimation.core.config import Config

from conftest import PROJECT_ROOT


@pytest.fixture
def parsed_flags():
    def parse(*args):
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["train.py", *args])
        return flags.FLAGS

    yield parse
    flags.FLAGS.unparse_flags()


def test_defaults_are_the_papers(parsed_flags):
    parsed_flags()
    assert flags.build_config() == Config()


def test_nested_flagfiles_resolve_with_the_last_value_winning(parsed_flags, monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)
    parsed_flags("--flagfile=configs/smoke.flags", "--batch_size=6")
    config = flags.build_config()
    assert (config.model.image_size, config.data.image_size, config.model.generator_filters) == (32, 32, 8)
    assert config.data.batch_size == 6
    assert config.loss.lambda_aus == 160.0  # from paper.flags, through smoke.flags
    assert config.run.max_steps == 4


def test_emotionet_config_is_the_papers_recipe(parsed_flags, monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)
    parsed_flags("--flagfile=configs/emotionet.flags")
    config = flags.build_config()
    assert config.model == Config().model and config.loss == Config().loss and config.optimizer == Config().optimizer
    assert (config.data.batch_size, config.data.n_critic, config.data.data_dir) == (25, 5, "data/emotionet")


def test_invalid_values_name_the_flag(parsed_flags):
    parsed_flags("--image_size=100")
    with pytest.raises(ValueError, match=r"image_size=100 is invalid: expected a multiple of 2\*\*critic_layers = 64"):
        flags.build_config()
    parsed_flags("--strategy=tpu")
    with pytest.raises(ValueError, match="strategy='tpu' is invalid"):
        flags.build_config()


def test_resolved_flags_reproduce_the_config(parsed_flags, tmp_path, monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)
    parsed_flags("--flagfile=configs/smoke.flags", "--lambda_cyc=3", f"--workdir={tmp_path}")
    expected = flags.build_config()
    path = flags.write_resolved_flags(tmp_path)
    parsed_flags(f"--flagfile={path}")
    assert flags.build_config() == expected


def test_dry_run_prints_the_config_and_exits():
    result = subprocess.run([sys.executable, "scripts/train.py", "--flagfile=configs/smoke.flags", "--dry_run"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--image_size=32" in result.stdout and '"lambda_aus": 160.0' in result.stdout


def test_long_quickstart_is_the_quickstart_trained_three_times_as_long(parsed_flags, monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)
    parsed_flags("--flagfile=configs/quickstart.flags")
    quick, quick_workdir = flags.build_config(), flags.FLAGS.workdir
    parsed_flags("--flagfile=configs/quickstart_long.flags")
    long = flags.build_config()
    assert (long.optimizer.epochs, long.optimizer.decay_epochs) == (93, 27) == (
        3 * quick.optimizer.epochs, 3 * quick.optimizer.decay_epochs)
    assert dataclasses.replace(long.optimizer, epochs=31, decay_epochs=9) == quick.optimizer
    assert (long.model, long.loss, long.data, long.run) == (quick.model, quick.loss, quick.data, quick.run)
    assert (quick_workdir, flags.FLAGS.workdir) == ("runs/quickstart", "runs/quickstart_long")


def test_synthetic_images_is_a_data_flag_like_every_other_field(parsed_flags):
    parsed_flags("--synthetic_images=30")
    assert flags.build_config().data.synthetic_images == 30
    resolved = flags.resolved_flags()
    assert resolved.count("--synthetic_images=") == 1 and "--synthetic_images=30\n" in resolved
    assert "render this many synthetic faces there first" in flags.FLAGS["synthetic_images"].help
    parsed_flags("--synthetic_images=-1")
    with pytest.raises(ValueError, match="synthetic_images=-1 is invalid: expected an integer >= 0"):
        flags.build_config()


def test_every_config_field_has_its_help_text():
    names = {field.name for section in flags._SECTIONS.values() for field in dataclasses.fields(section)}
    assert names - set(flags._HELP) == set()


def test_jit_compile_and_mixed_precision_are_auto_by_default(parsed_flags):
    parsed_flags()
    assert (flags.build_config().run.jit_compile, flags.build_config().run.mixed_precision) == ("auto", "auto")
    for value in ("auto", "true", "false"):
        parsed_flags(f"--jit_compile={value}")
        assert flags.build_config().run.jit_compile == value
        assert f"--jit_compile={value}\n" in flags.resolved_flags()  # a flagfile that reproduces it
    parsed_flags("--jit_compile=maybe")
    with pytest.raises(ValueError, match="jit_compile='maybe' is invalid"):
        flags.build_config()
