"""The edge between a user and the library: user mistakes become one paragraph and a non-zero exit.

Every script wraps its `main` with `run(main)`, so all of them share one exit-code convention:
0 done; USER_ERROR (2) for a user's mistake: a ValueError, FileNotFoundError, FileExistsError,
NotADirectoryError or PermissionError raised by the library (a bad flag value, a missing file, an
unusable dataset, a version that exists) or a UserError raised by the script, printed as one paragraph
`error: <message>` without a traceback; anything else is a bug and keeps its traceback (exit 1).
Scripts add their own codes above 2 where they document them (scripts/train.py: 3 for a NaN loss,
128 + N for signal N).
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
        except (UserError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
                PermissionError) as error:
            fail(str(error))

    app.run(guarded)
