"""Tests for tf_ganimation/cli.py: one exit-code convention for every script, and thin scripts."""

import subprocess
import sys
import textwrap

import pytest

from conftest import PROJECT_ROOT

SCRIPTS = sorted(path for path in (PROJECT_ROOT / "scripts").rglob("*.py"))


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


def test_main_returning_normally_exits_0_and_an_unknown_flag_is_absls_usage_error():
    assert _run_main("print('done')").returncode == 0
    unknown = _run_main("print('done')", "--no_such_flag=1")
    assert unknown.returncode == 1 and "no_such_flag" in unknown.stderr and "Traceback" not in unknown.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: str(path.relative_to(PROJECT_ROOT)))
def test_every_script_goes_through_cli_run_without_sys_path_edits(script):
    text = script.read_text()
    assert "cli.run(main)" in text, f"{script.name} must end in `cli.run(main)` (one exit-code convention)"
    assert "sys.path" not in text and "app.run(" not in text
