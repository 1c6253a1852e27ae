"""Tests for tf_ganimation/cli.py: one exit-code convention for every script, and thin scripts."""

import ast
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
from absl import flags

from tf_ganimation import cli
from tf_ganimation.core import gpu_probe

from conftest import PROJECT_ROOT

# The commands: every file of scripts/ with a __main__ block; the others are modules of a script beside them.
SCRIPTS = sorted(path for path in (PROJECT_ROOT / "scripts").rglob("*.py")
                 if 'if __name__ == "__main__":' in path.read_text())
SCRIPT_MODULES = sorted(set((PROJECT_ROOT / "scripts").rglob("*.py")) - set(SCRIPTS))
# Scripts that run with numpy and jax or torch alone, on a machine without tf_ganimation (export_step.py's bundle).
STANDALONE = {"step_runner.py", "pytorch_reference.py"}
CLI_SCRIPTS = [path for path in SCRIPTS if path.name not in STANDALONE]


def _run_main(body: str, *args: str) -> subprocess.CompletedProcess:
    program = textwrap.dedent(f"""
        from tf_ganimation import cli

        def main(argv):
        {textwrap.indent(textwrap.dedent(body), "    ")}

        cli.run(main)
    """)
    return subprocess.run([sys.executable, "-c", program, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("exception, message", [
    ("ValueError", "batch_size=0 is invalid: expected a number > 0"),
    ("FileNotFoundError", "data/faces not found"),
    ("FileExistsError", "models/ganimation/1 exists: never overwritten"),
    ("cli.UserError", "--workdir is required"),
])
def test_a_user_error_is_one_paragraph_and_exit_status_2(exception, message):
    result = _run_main(f"raise {exception}({message!r})")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {message}" and "Traceback" not in result.stderr


def test_a_long_message_is_wrapped_at_100_columns():
    result = _run_main("raise ValueError('word ' * 60)")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) > 1 and max(len(line) for line in lines) <= 100


def test_a_bug_keeps_its_traceback_and_exit_status_1():
    result = _run_main("raise KeyError('a bug')")
    assert result.returncode == 1 and "Traceback" in result.stderr and "KeyError" in result.stderr


def test_main_returning_normally_exits_0():
    result = _run_main("print('done')")
    assert result.returncode == 0 and result.stdout == "done\n"


# === Flag errors: exit 2, one paragraph naming the flag and the closest valid one ===


def _flag_values() -> flags.FlagValues:
    flag_values = flags.FlagValues()
    flags.DEFINE_integer("batch_size", 25, "Batch.", flag_values=flag_values)
    flags.DEFINE_string("image", None, "A photo.", flag_values=flag_values)
    flags.DEFINE_bool("cache_images", False, "Cache.", flag_values=flag_values)
    flags.DEFINE_enum("faces", "all", ["all", "largest"], "Faces.", flag_values=flag_values)
    return flag_values


def _parse_error(*args: str) -> Exception:
    flag_values = _flag_values()
    with pytest.raises((flags.Error, ValueError)) as raised:
        flag_values(["prog", *args])
    return raised.value


@pytest.mark.parametrize("given, closest", [("batch_sise", "batch_size"), ("batchsize", "batch_size"),
                                            ("imgae", "image"), ("images", "image"),
                                            ("nocache_image", "nocache_images"), ("video", None), ("x", None)])
def test_the_closest_valid_flag_is_suggested_only_when_it_is_close(given, closest):
    assert cli.closest_flag(given, cli.flag_names(_flag_values())) == closest


def test_flag_names_include_the_negation_of_boolean_flags():
    assert cli.flag_names(_flag_values()) == ["batch_size", "cache_images", "faces", "image", "nocache_images"]


@pytest.mark.parametrize("args, message", [
    (["--imgae=face.jpg"], "unknown flag --imgae=face.jpg: did you mean --image? (--helpshort lists"),
    (["--batch_size=abc"], "flag --batch_size=abc: invalid literal for int() with base 10: 'abc' (--batch_size"),
    (["--faces=every"], "value should be one of <all|largest> (--faces takes one of all, largest;"),
    (["--nocache_images=1"], "--nocache_images=1 does not take an argument (--cache_images takes true or false"),
    (["--batch_size"], "Missing value for flag --batch_size (--batch_size takes an integer;"),
    (["--flagfile=/no/such.flags"], "Unable to open flagfile: [Errno 2] No such file or directory: '/no/such.flags' ("),
])
def test_each_kind_of_flag_error_gets_a_message_that_names_the_flag(args, message):
    assert message in cli.flag_error_message(_parse_error(*args), _flag_values())


def test_an_unknown_flag_with_no_close_name_lists_the_scripts_own_flags(monkeypatch):
    flag_values = _flag_values()
    monkeypatch.setattr(sys, "argv", ["scripts/animate.py"])  # absl files the main module's flags under argv[0]
    for name in ("gif", "out"):
        flags.DEFINE_string(name, "", "A file.", flag_values=flag_values, module_name="scripts/animate.py")
    message = cli.flag_error_message(flags.UnrecognizedFlagError("video", "--video=x.mp4"), flag_values)
    assert message == ("unknown flag --video=x.mp4: no flag has a similar name; animate.py's own flags are --gif, "
                       "--out (--helpshort lists this script's flags)")


def _script(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, script, *args], check=False, cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.slow
def test_an_unknown_flag_exits_2_naming_it_and_the_scripts_flags():
    result = _script("scripts/animate.py", "--rotate=90")
    assert result.returncode == 2, result.stderr[-3000:]
    message = result.stderr.strip()
    assert message.startswith("error: unknown flag --rotate=90: no flag has a similar name; animate.py's own")
    assert "--image" in message and "--gif" in message and "\n\n" not in message
    assert "Traceback" not in result.stderr and "FATAL" not in result.stderr and "Pass --helpshort" not in message
    misspelled = _script("scripts/animate.py", "--imgae=face.jpg")
    assert misspelled.returncode == 2 and "did you mean --image?" in misspelled.stderr


@pytest.mark.slow
def test_a_malformed_flag_value_exits_2_naming_the_flag_and_what_it_takes():
    result = _script("scripts/train.py", "--batch_size=abc")
    assert result.returncode == 2, result.stderr[-3000:]
    message = " ".join(result.stderr.split())
    assert message.startswith("error: flag --batch_size=abc: invalid literal for int()")
    assert "(--batch_size takes an integer; --helpshort lists this script's flags)" in message
    assert "Traceback" not in result.stderr and "FATAL" not in result.stderr


# === A quiet start ===


@pytest.mark.parametrize("script", CLI_SCRIPTS, ids=lambda path: str(path.relative_to(PROJECT_ROOT)))
def test_every_script_goes_through_cli_run_without_sys_path_edits(script):
    text = script.read_text()
    assert "cli.run(main)" in text, f"{script.name} must end in `cli.run(main)` (one exit-code convention)"
    assert "sys.path" not in text and "app.run(" not in text


def test_a_module_in_scripts_is_imported_by_a_script_beside_it():
    assert SCRIPTS and [path.name for path in SCRIPT_MODULES] == ["step_bundle.py", "throughput.py"]
    for module in SCRIPT_MODULES:
        users = [script for script in SCRIPTS if script.parent == module.parent
                 and module.stem in _imports_in_order(script)]
        assert users, f"{module.name} has no __main__ block and no script beside it imports it"
        assert "sys.path" not in module.read_text() and "flags.DEFINE" not in module.read_text()

# absl's log-line format: severity, date, time, thread, file:line] (C++ lines before absl::InitializeLog
# have the date 0000 and the seconds since 1970).
_LOG_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ ([^\]\s]+):\d+\] ")
_OUR_FILES = {path.name for folder in ("tf_ganimation", "scripts") for path in (PROJECT_ROOT / folder).rglob("*.py")}


def _environment_without_log_settings() -> dict:
    """This environment, less the variables a run decides for itself (CI sets TF_CPP_MIN_LOG_LEVEL=2)."""
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    if env.get("TF_ENABLED_DEVICE_TYPES") == gpu_probe.CPU_DEVICE_TYPES:
        del env["TF_ENABLED_DEVICE_TYPES"]
    return env


def test_importing_the_package_and_its_library_changes_nothing_in_the_process():
    program = textwrap.dedent("""
        import json, os, sys
        before, finders = dict(os.environ), list(sys.meta_path)
        import tf_ganimation
        from tf_ganimation.core import config
        first = {"environ": dict(os.environ) == before, "meta_path": sys.meta_path == finders}
        from tf_ganimation.training import trainer  # loads TensorFlow, which sets variables of its own
        ours = [name for name in ("TF_ENABLED_DEVICE_TYPES", "TF_CPP_MIN_LOG_LEVEL")
                if os.environ.get(name) != before.get(name)]
        print(json.dumps({**first, "changed": ours}))
    """)
    result = subprocess.run([sys.executable, "-c", program], check=False, capture_output=True, text=True,
                            timeout=120, env=_environment_without_log_settings())
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.splitlines()[-1]) == {"environ": True, "meta_path": True, "changed": []}


def _imports_in_order(path) -> list[str]:
    """The top-level modules a script imports, in order (`from a.b import c` gives a.b.c when c is a module)."""
    names = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


@pytest.mark.parametrize("script", CLI_SCRIPTS, ids=lambda path: str(path.relative_to(PROJECT_ROOT)))
def test_every_script_imports_cli_before_anything_that_may_load_tensorflow(script):
    # Importing cli readies TensorFlow's start (its log level, the GPU probe): it must come first.
    imports = _imports_in_order(script)
    assert "tf_ganimation.cli" in imports
    before = imports[:imports.index("tf_ganimation.cli")]
    harmless = set(sys.stdlib_module_names) | {"absl", "numpy", "PIL"}  # none of them loads TensorFlow
    assert all(name.split(".")[0] in harmless for name in before), before


def test_an_error_line_of_tensorflow_still_shows():
    # Without a GPU driver, a CUDA device choice keeps TensorFlow's probe and its E-level cuInit line.
    if gpu_probe.driver_present():
        pytest.skip("this machine has a GPU driver: TensorFlow's probe logs no error here")
    program = "from tf_ganimation import cli\nimport tensorflow as tf\ntf.config.list_physical_devices()\n"
    env = {**_environment_without_log_settings(), "CUDA_VISIBLE_DEVICES": "0"}
    result = subprocess.run([sys.executable, "-c", program], check=False, capture_output=True, text=True, timeout=120,
                            env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    severities = [match.group(1) for line in result.stderr.splitlines() if (match := _LOG_LINE.match(line))]
    assert "E" in severities and set(severities) == {"E"}, result.stderr
    assert "failed call to cuInit" in result.stderr


@pytest.mark.slow
def test_the_quick_starts_first_ten_lines_are_ours_and_no_tensorflow_info_or_warning_line_shows(tmp_path):
    env = _environment_without_log_settings()
    command = [sys.executable, "scripts/train.py", "--flagfile=configs/quickstart.flags", "--synthetic_images=24",
               f"--data_dir={tmp_path / 'faces'}", f"--workdir={tmp_path / 'run'}", "--max_steps=2"]
    result = subprocess.run(command, check=False, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
                            env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stderr.split("\n")  # not splitlines: a progress bar's \r updates are one line
    assert lines[0] == f"Rendering 24 synthetic faces into {tmp_path / 'faces'} ..."
    for line in lines[:10]:
        match = _LOG_LINE.match(line)
        assert (match.group(2) in _OUR_FILES) if match else not line.startswith("WARNING: All log messages"), line
    theirs = [line for line in lines if (match := _LOG_LINE.match(line)) and match.group(2) not in _OUR_FILES]
    assert theirs == [] and "All log messages before absl::InitializeLog()" not in result.stderr, "\n".join(theirs)
    assert json.loads(lines[-2])["step"] == 2
