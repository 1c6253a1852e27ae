"""The edge between a user and the library: user mistakes become one paragraph and a non-zero exit.

Every script wraps its `main` with `run(main)`, so all of them share one exit-code convention:
0 done; USER_ERROR (2) for a user's mistake: an unknown or malformed flag (the message names it and
suggests the closest valid flag), a ValueError, FileNotFoundError, FileExistsError, NotADirectoryError
or PermissionError raised by the library (a bad flag value, a missing file, an unusable dataset, a
version that exists) or a UserError raised by the script, printed as one paragraph `error: <message>`
without a traceback; anything else is a bug and keeps its traceback (exit 1). Scripts add their own
codes above 2 where they document them (scripts/train.py: 3 for a NaN loss, 128 + N for signal N).

A quiet start: importing this module puts `tensorflow_log.QuietImport` on sys.meta_path, so that when
the script first imports TensorFlow (at its top, or later), and only then, the process is readied
for it: TensorFlow's GPU probe is skipped on a machine without a GPU driver (core/gpu_probe) and its
log level is set from --verbosity (core/tensorflow_log: errors only by default). Every script
therefore imports `tf_ganimation.cli` before anything that loads TensorFlow (tests/test_cli.py checks
it). `import tf_ganimation` and the library itself change nothing in the process.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
import textwrap
from collections.abc import Callable, MutableMapping, Sequence

from absl import app, flags
from absl import logging as absl_logging

from tf_ganimation.core import gpu_probe, tensorflow_log

USER_ERROR = 2


class UserError(Exception):
    """A mistake the user can fix; scripts raise it for conditions the library does not check."""


def fail(message: str, exit_code: int = USER_ERROR) -> None:
    """Prints `error: message` wrapped to 100 columns and exits."""
    print(textwrap.fill(f"error: {message}", width=100, break_long_words=False, break_on_hyphens=False),
          file=sys.stderr)
    sys.exit(exit_code)


# === Flag errors ===


def flag_names(flag_values: flags.FlagValues) -> list[str]:
    """Every name a command line may give: each flag's name, and no<name> for a boolean flag."""
    names = []
    for name in flag_values:
        names.append(name)
        if flag_values[name].boolean:
            names.append(f"no{name}")
    return sorted(set(names))


def closest_flag(name: str, valid: Sequence[str]) -> str | None:
    """The valid flag name closest to `name` (difflib's ratio, at least 0.6), or None when none is close."""
    matches = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    return matches[0] if matches else None


# What a flag of each absl type takes, for a malformed value's message.
_TAKES = {"int": "an integer", "float": "a number", "bool": "true or false, or no value", "string": "a string"}


def flag_error_message(error: Exception, flag_values: flags.FlagValues) -> str:
    """One paragraph for a flag that absl could not parse: the flag, what is wrong, and what to use instead."""
    helpshort = "--helpshort lists this script's flags"
    if isinstance(error, flags.UnrecognizedFlagError):
        given = error.flagvalue if str(error.flagvalue).startswith("-") else f"--{error.flagname}"
        closest = closest_flag(error.flagname, flag_names(flag_values))
        if closest:
            return f"unknown flag {given}: did you mean --{closest}? ({helpshort})"
        own = sorted(flag.name for flag in flag_values.get_key_flags_for_module(sys.argv[0]))
        listed = f"; {os.path.basename(sys.argv[0])}'s own flags are --{', --'.join(own)}" if own else ""
        return f"unknown flag {given}: no flag has a similar name{listed} ({helpshort})"
    message = str(error).removeprefix("ERROR:: ")  # CantOpenFlagFileError's prefix
    named = re.search(r"--(\w+)", message)
    name = named and next((name for name in (named.group(1), named.group(1).removeprefix("no"))
                           if name in flag_values), None)
    if name:
        flag = flag_values[name]
        takes = (f"one of {', '.join(flag.parser.enum_values)}" if hasattr(flag.parser, "enum_values")
                 else _TAKES.get(flag.flag_type(), f"a value of type {flag.flag_type()}"))
        return f"{message} (--{name} takes {takes}; {helpshort})"
    return f"{message} ({helpshort})"


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with its errors as user errors (exit 2); absl itself exits 1 for them."""
    try:
        return flags.FLAGS(argv)
    except (flags.Error, ValueError) as error:  # absl raises ValueError for --noflag=value
        fail(flag_error_message(error, flags.FLAGS))


# === A quiet start ===


def prepare_tensorflow(argv: Sequence[str] | None = None, environ: MutableMapping[str, str] | None = None) -> int:
    """Sets TensorFlow's start-up environment (before it loads) for a command-line run; returns the log level.

    The GPU probe is skipped without a GPU driver (gpu_probe.skip_without_driver) and TF_CPP_MIN_LOG_LEVEL
    is set from --verbosity (tensorflow_log.level_for).
    """
    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    gpu_probe.skip_without_driver(environ)
    level = tensorflow_log.level_for(argv, environ)
    environ[tensorflow_log.LEVEL_VARIABLE] = str(level)
    return level


def _install_quiet_import() -> None:
    if "tensorflow" not in sys.modules and not any(isinstance(finder, tensorflow_log.QuietImport)
                                                   for finder in sys.meta_path):
        sys.meta_path.insert(0, tensorflow_log.QuietImport(prepare_tensorflow))


_install_quiet_import()


def _quiet_python_logging() -> None:
    """Other packages' INFO lines through absl (TensorFlow's, per checkpoint) hidden unless --verbosity was given."""
    if not flags.FLAGS["verbosity"].present:
        handler = absl_logging.get_absl_handler()
        handler.addFilter(tensorflow_log.ThirdPartyInfoFilter(os.path.dirname(os.path.abspath(__file__))))


def run(main: Callable[[list[str]], object]) -> None:
    """absl's app.run, with flag errors and user errors reported as one paragraph and exit status 2."""

    def guarded(argv):
        _quiet_python_logging()
        try:
            return main(argv)
        except (UserError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
                PermissionError) as error:
            fail(str(error))

    app.run(guarded, flags_parser=parse_flags)

