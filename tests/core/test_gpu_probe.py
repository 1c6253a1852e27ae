"""Tests for tf_ganimation/core/gpu_probe.py: when TensorFlow's GPU probe is skipped, and a real run's log."""

import json
import os
import re
import subprocess
import sys

import pytest

from tf_ganimation.core import gpu_probe

from conftest import PROJECT_ROOT

CPU_ONLY = {"platform": "linux", "tensorflow_imported": False, "gpu_or_plugin": False}


def test_without_a_driver_tensorflow_gets_only_its_cpu_device_types():
    environ = {"PATH": "/usr/bin"}
    assert gpu_probe.skip_without_driver(environ, **CPU_ONLY) is True
    assert environ == {"PATH": "/usr/bin", "TF_ENABLED_DEVICE_TYPES": "CPU,XLA_CPU"}


@pytest.mark.parametrize("setting", [{"gpu_or_plugin": True}, {"tensorflow_imported": True},
                                     {"platform": "darwin"}, {"platform": "win32"}],
                         ids=["driver or plugin", "tensorflow already imported", "macOS", "Windows"])
def test_a_machine_that_may_have_a_gpu_or_a_late_call_changes_nothing(setting):
    environ = {}
    assert gpu_probe.skip_without_driver(environ, **{**CPU_ONLY, **setting}) is False
    assert environ == {}


@pytest.mark.parametrize("variable, value", [("CUDA_VISIBLE_DEVICES", ""), ("CUDA_VISIBLE_DEVICES", "0,1"),
                                             ("TF_ENABLED_DEVICE_TYPES", "CPU,GPU")])
def test_the_users_device_choice_stands(variable, value):
    environ = {variable: value}
    assert gpu_probe.skip_without_driver(environ, **CPU_ONLY) is False
    assert environ == {variable: value}


def test_the_default_checks_ask_for_a_driver_and_for_plugins(monkeypatch):
    asked = []
    monkeypatch.setattr(gpu_probe, "driver_present", lambda: asked.append("driver") or False)
    monkeypatch.setattr(gpu_probe, "device_plugin_installed", lambda environ: asked.append("plugin") or True)
    environ = {}
    assert gpu_probe.skip_without_driver(environ, platform="linux", tensorflow_imported=False) is False
    assert asked == ["driver", "plugin"] and environ == {}


@pytest.mark.parametrize("path", gpu_probe.DRIVER_PATHS)
def test_each_driver_path_counts_as_a_driver(path):
    assert gpu_probe.driver_present(exists=lambda pattern: pattern == path) is True


def test_no_driver_path_means_no_driver_and_globs_are_expanded(monkeypatch):
    assert gpu_probe.driver_present(exists=lambda pattern: False) is False
    monkeypatch.setattr(gpu_probe.glob, "glob", lambda pattern: ["/dev/accel0"] if pattern == "/dev/accel*" else [])
    assert gpu_probe.driver_present() is True


@pytest.mark.parametrize("folder", ["tensorflow-plugins", "libtpu", None])
def test_a_device_plugin_or_libtpu_on_the_search_path_counts(folder, tmp_path):
    if folder:
        (tmp_path / "site-packages" / folder).mkdir(parents=True)
    found = gpu_probe.device_plugin_installed(search_path=[str(tmp_path / "site-packages")], environ={})
    assert found is (folder is not None)
    assert gpu_probe.device_plugin_installed(search_path=[], environ={"TF_PLUGGABLE_DEVICE_LIBRARY_PATH": "/opt/x.so"})


def test_importing_the_package_imports_no_tensorflow():
    # Every script imports tf_ganimation.cli before TensorFlow loads, so the probe is decided in time.
    program = "import sys, tf_ganimation.core.config; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_a_tiny_training_run_prints_no_error_line(tmp_path):
    # The real log of scripts/train.py with every TensorFlow line (--verbosity=0): TF_CPP_MIN_LOG_LEVEL
    # removed (CI sets it to 2), and the variables this process may have decided removed, so the run
    # decides afresh (cli.prepare_tensorflow).
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    if env.get("TF_ENABLED_DEVICE_TYPES") == gpu_probe.CPU_DEVICE_TYPES:
        del env["TF_ENABLED_DEVICE_TYPES"]
    no_driver = not gpu_probe.driver_present()
    if no_driver:
        env.pop("CUDA_VISIBLE_DEVICES", None)  # selects nothing on this machine, but would keep the probe
    command = [sys.executable, "scripts/train.py", "--flagfile=configs/smoke.flags", f"--data_dir={tmp_path / 'faces'}",
               "--synthetic_images=24", "--image_size=16", f"--workdir={tmp_path / 'run'}", "--max_steps=2",
               "--verbosity=0"]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stderr.strip().splitlines()[-1])["step"] == 2
    errors = [line for line in result.stderr.splitlines() if re.match(r"^E\d{4} ", line)]
    assert errors == [], "\n".join(errors)
    if no_driver and not gpu_probe.device_plugin_installed():
        assert "Device factory 'GPU' disabled by TF_ENABLED_DEVICE_TYPES" in result.stderr
