"""The edge between a user and the library: user mistakes become one paragraph and a non-zero exit.

Scripts wrap their `main` with `run(main)`: a ValueError or FileNotFoundError raised by the library (a
bad flag value, a missing file, an unusable dataset) is printed as `error: <message>` without a
traceback and exits with USER_ERROR; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
import textwrap
from typing import Callable

from absl import app

USER_ERROR = 2


class UserError(Exception):
    """A mistake the user can fix; scripts raise it for conditions the library does not check."""


def fail(message: str, exit_code: int = USER_ERROR) -> None:
    """Prints `error: message` wrapped to 100 columns and exits."""
    print(textwrap.fill(f"error: {message}", width=100, break_long_words=False, break_on_hyphens=False),
          file=sys.stderr)
    sys.exit(exit_code)


def run(main: Callable[[list[str]], object]) -> None:
    """absl's app.run, with user errors reported as one paragraph (absl's own flag errors already are)."""

    def guarded(argv):
        try:
            return main(argv)
        except (UserError, ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as error:
            fail(str(error))

    app.run(guarded)
