"""Tests for tf_ganimation/core/tensorflow_log.py: the log level of a run, which lines show, and a quiet import."""

import logging
import os
import sys

import pytest

from tf_ganimation.core import tensorflow_log

# Lines TensorFlow 2.21 printed in a run of scripts/train.py on a 2-core CPU (BENCHMARKS.md's machine).
STATIC_INFO = ("I0000 00:00:1796610188.307519    7437 cudart_stub.cc:31] Could not find cuda drivers on your "
               "machine, GPU will not be used.")
LATER_WARNING = ("W0000 00:00:1796610197.369343    7437 dataset.cc:997] Input of GeneratorDatasetOp::Dataset will "
                 "not be optimized because the dataset does not implement the AsGraphDefInternal() method.")
ERROR = ("E0000 00:00:1796610683.430161   13655 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
         "Failed call to cuInit: UNKNOWN ERROR (303)")
BEFORE_INITIALIZE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
OURS = "Rendering 40 synthetic faces into /tmp/faces ..."


@pytest.mark.parametrize("argv, verbosity", [
    ([], None), (["--verbosity=1"], 1), (["--verbosity", "-1"], -1), (["-v=0"], 0), (["-v", "2"], 2),
    (["--verbosity=1", "--verbosity=-2"], -2), (["--", "--verbosity=1"], None), (["--vmodule=x=1"], None),
    (["--verbosity"], None),
])
def test_verbosity_is_read_from_the_command_line(argv, verbosity):
    assert tensorflow_log.verbosity_from(argv) == verbosity


@pytest.mark.parametrize("argv, environ, level", [
    (["train.py"], {}, 2),  # the default: errors only
    (["train.py", "--verbosity=0"], {}, 0), (["train.py", "--verbosity=3"], {}, 0),
    (["train.py", "--verbosity=-1"], {}, 1), (["train.py", "-v", "-2"], {}, 2), (["train.py", "-v=-9"], {}, 3),
    (["train.py"], {"TF_CPP_MIN_LOG_LEVEL": "0"}, 0),  # the user's setting stands...
    (["train.py", "--verbosity=-1"], {"TF_CPP_MIN_LOG_LEVEL": "0"}, 1),  # ...unless the command line says more
    (["train.py"], {"TF_CPP_MIN_LOG_LEVEL": "verbose"}, 2),
    (["--verbosity=0"], {}, 2),  # argv[0] is the program, not a flag
])
def test_the_level_comes_from_verbosity_then_the_environment_then_the_default(argv, environ, level):
    assert tensorflow_log.level_for(argv, environ) == level


@pytest.mark.parametrize("level, shown", [
    (0, [BEFORE_INITIALIZE, STATIC_INFO, LATER_WARNING, ERROR, OURS]),
    (1, [BEFORE_INITIALIZE, LATER_WARNING, ERROR, OURS]),
    (2, [ERROR, OURS]),
    (3, [OURS]),
])
def test_kept_lines_hide_what_the_level_hides_and_keep_every_other_line(level, shown):
    text = "".join(f"{line}\n" for line in (BEFORE_INITIALIZE, STATIC_INFO, LATER_WARNING, ERROR, OURS))
    assert tensorflow_log.kept_lines(text, level).splitlines() == shown


def test_filtered_stderr_writes_back_what_the_level_shows(capfd):
    with tensorflow_log.filtered_stderr(2):
        os.write(2, f"{BEFORE_INITIALIZE}\n{STATIC_INFO}\n{ERROR}\n{OURS}\n".encode())
    assert capfd.readouterr().err.splitlines() == [ERROR, OURS]


def test_filtered_stderr_writes_back_everything_when_the_block_fails(capfd):
    with pytest.raises(ImportError, match="broken"), tensorflow_log.filtered_stderr(2):
        os.write(2, f"{STATIC_INFO}\n".encode())
        raise ImportError("broken")
    assert capfd.readouterr().err.splitlines() == [STATIC_INFO]


def test_quiet_import_prepares_first_then_imports_the_module_quietly_once(tmp_path, monkeypatch, capfd):
    # A stand-in for tensorflow: a package that logs as TensorFlow's shared libraries do when loaded.
    package = tmp_path / "noisy_native_package"
    package.mkdir()
    logged = "".join(f"{line}\n" for line in (BEFORE_INITIALIZE, STATIC_INFO, ERROR)).encode()
    (package / "__init__.py").write_text(
        f"import os\nos.write(2, {logged!r})\nLEVEL_AT_IMPORT = os.environ.get('TF_CPP_MIN_LOG_LEVEL')\n")
    monkeypatch.syspath_prepend(os.fspath(tmp_path))
    prepared = []

    def prepare():
        prepared.append(True)
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        return 2

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    finder = tensorflow_log.QuietImport(prepare, module="noisy_native_package")
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    monkeypatch.delitem(sys.modules, "noisy_native_package", raising=False)
    import json  # noqa: F401 (another module: the finder lets it pass)

    import noisy_native_package

    assert prepared == [True] and noisy_native_package.LEVEL_AT_IMPORT == "2"  # prepared before it ran
    assert capfd.readouterr().err.splitlines() == [ERROR]
    assert finder not in sys.meta_path
    assert noisy_native_package.__spec__.loader.get_filename("noisy_native_package").endswith("__init__.py")


def _record(pathname: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("absl", level, pathname, 440, "Sharding callback duration: %s", (58,), None)


def test_other_packages_info_lines_are_hidden_and_ours_and_every_warning_kept(tmp_path):
    site_packages = tmp_path / "site-packages"
    own = site_packages / "tf_ganimation"  # installed, not editable: inside site-packages too
    own.mkdir(parents=True)
    info_filter = tensorflow_log.ThirdPartyInfoFilter(os.fspath(own))
    info_filter._site = (os.path.join(os.path.realpath(site_packages), ""),)
    saver = os.fspath(site_packages / "tensorflow" / "python" / "checkpoint" / "functional_saver.py")
    assert not info_filter.filter(_record(saver))
    assert info_filter.filter(_record(saver, logging.WARNING))
    assert info_filter.filter(_record(os.fspath(own / "training" / "checkpoints.py")))
    assert info_filter.filter(_record(os.fspath(tmp_path / "scripts" / "train.py")))
