"""TensorFlow's log lines in a command-line run: errors only, unless --verbosity asks for more.

TensorFlow logs from C++, in absl's format (`I0000 00:00:1796610188.307196  7437 port.cc:153] ...`,
first letter I, W, E or F for INFO, WARNING, ERROR, FATAL), and from Python through absl logging. On a
CPU-only machine, TensorFlow 2.21 prints eight or more such lines before any line of a script: on
import, from each of its two shared libraries, absl's `WARNING: All log messages before
absl::InitializeLog() is called are written to STDERR`, then `port.cc` (oneDNN) and `cudart_stub.cc`;
then `device_factory.cc` and `cpu_feature_guard.cc`; later, at the first dataset, `generator_dataset_op.cc`
("Memory patch applied") and `dataset.cc` ("GeneratorDatasetOp ... will not be optimized"); and from
Python, `functional_saver.py` at every checkpoint. Measured, for each:
  * TF_CPP_MIN_LOG_LEVEL, set before TensorFlow loads, hides the device_factory, cpu_feature_guard,
    generator_dataset_op and dataset.cc lines;
  * it does not hide the first lines of each shared library (absl's WARNING, port.cc, cudart_stub.cc),
    not even at level 3: they are logged by static initialisers before TensorFlow applies the level.
    `QuietImport` therefore holds file descriptor 2 while `tensorflow` is imported and writes back only
    the lines the level keeps (`kept_lines`);
  * the Python lines go through absl's handler, which `ThirdPartyInfoFilter` filters.

The level is TensorFlow's TF_CPP_MIN_LOG_LEVEL: 0 shows every line, 1 hides INFO, 2 (DEFAULT_LEVEL)
hides INFO and WARNING, 3 hides ERROR too. `--verbosity` (absl's flag; -v) on the command line sets
it: 0 or more shows INFO, -1 WARNING, -2 ERROR, -3 FATAL only; otherwise a TF_CPP_MIN_LOG_LEVEL the
user set stands. Imports nothing of TensorFlow: it runs before TensorFlow does (cli.py).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import logging
import os
import re
import site
import sys
import tempfile
from collections.abc import Callable, Iterator, MutableMapping, Sequence

DEFAULT_LEVEL = 2
LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
# An absl log line's severity letter, by TF_CPP_MIN_LOG_LEVEL: a line shows when its index >= the level.
SEVERITIES = "IWEF"
_LOG_LINE = re.compile(r"([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^\]\s]+:\d+\] ")
# absl's note before the first line of a library, at WARNING severity.
_BEFORE_INITIALIZE_LOG = "WARNING: All log messages before absl::InitializeLog() is called"
_VERBOSITY = re.compile(r"--?(?:verbosity|v)(?:=(-?\d+))?")


def verbosity_from(argv: Sequence[str]) -> int | None:
    """The value of the last --verbosity/-v on the command line (`--verbosity=N` or `--verbosity N`), or None."""
    value = None
    for index, argument in enumerate(argv):
        if argument == "--":
            break
        match = _VERBOSITY.fullmatch(argument)
        if match is None:
            continue
        text = match.group(1) if match.group(1) is not None else (argv[index + 1] if index + 1 < len(argv) else "")
        if re.fullmatch(r"-?\d+", text):
            value = int(text)
    return value


def level_for(argv: Sequence[str], environ: MutableMapping[str, str]) -> int:
    """The log level of this run: from --verbosity on the command line, else the user's TF_CPP_MIN_LOG_LEVEL,
    else DEFAULT_LEVEL."""
    verbosity = verbosity_from(argv[1:])
    if verbosity is not None:
        return min(3, max(0, -verbosity))
    value = environ.get(LEVEL_VARIABLE, "")
    return int(value) if value.isdigit() else DEFAULT_LEVEL


def shows(line: str, level: int) -> bool:
    """Whether a line TensorFlow printed shows at `level`; lines not in absl's format always do."""
    match = _LOG_LINE.match(line)
    if match:
        return SEVERITIES.index(match.group(1)) >= level
    if line.startswith(_BEFORE_INITIALIZE_LOG):
        return SEVERITIES.index("W") >= level
    return True


def kept_lines(text: str, level: int) -> str:
    """`text` without the lines `shows` hides at `level`."""
    return "".join(line for line in text.splitlines(keepends=True) if shows(line, level))


@contextlib.contextmanager
def filtered_stderr(level: int) -> Iterator[None]:
    """Holds file descriptor 2 (C++ writes there directly) and writes back what `level` shows, at the end.

    When the block raises, everything is written back: the lines may explain the error.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode(errors="replace")
            text = text if failed else kept_lines(text, level)
            if text:
                os.write(2, text.encode())


class _FilteredLoader(importlib.abc.Loader):
    """A module's own loader, with its execution inside filtered_stderr."""

    def __init__(self, loader: importlib.abc.Loader, level: int):
        self._loader, self._level = loader, level

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        with filtered_stderr(self._level):
            self._loader.exec_module(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


class QuietImport(importlib.abc.MetaPathFinder):
    """On sys.meta_path: when `module` (tensorflow) is first imported, prepares the process then imports it quietly.

    `prepare() -> level` runs first (it may set TensorFlow's environment variables, read at its start-up);
    the import then runs inside filtered_stderr at that level. Used once, then removed.
    """

    def __init__(self, prepare: Callable[[], int], module: str = "tensorflow"):
        self._prepare, self.module = prepare, module

    def find_spec(self, name, path=None, target=None):
        if name != self.module:
            return None
        sys.meta_path.remove(self)
        level = self._prepare()
        for finder in sys.meta_path:
            spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                if spec.loader is not None and level > 0:
                    spec.loader = _FilteredLoader(spec.loader, level)
                return spec
        return None


def _site_folders() -> tuple[str, ...]:
    folders = [*getattr(site, "getsitepackages", list)(), site.getusersitepackages()]
    return tuple(os.path.join(os.path.realpath(folder), "") for folder in folders)


class ThirdPartyInfoFilter(logging.Filter):
    """Hides INFO and DEBUG records logged from installed packages' files (TensorFlow's `functional_saver.py`
    logs a line per checkpoint through absl), except from `own_folder` (this package, installed or not)."""

    def __init__(self, own_folder: str):
        super().__init__()
        self._own = os.path.join(os.path.realpath(own_folder), "")
        self._site = _site_folders()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        path = os.path.realpath(record.pathname)
        return path.startswith(self._own) or not path.startswith(self._site)
