"""Atomic file writes: a reader sees the old file or the new one, never a part, and a failed write
leaves nothing behind. Every file the package writes for a user goes through `write_with`."""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable


def temporary_path(path: os.PathLike) -> pathlib.Path:
    """A hidden sibling of `path` for this process: `.<name>.<pid>.tmp` (same folder, same file system)."""
    path = pathlib.Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_with(path: os.PathLike, save: Callable[[str], object]) -> pathlib.Path:
    """Calls `save(temporary_path)` and renames the result onto `path`; creates the parent folder.

    Raises whatever `save` raises, after removing the temporary file.
    """
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(target)
    try:
        save(os.fspath(temporary))
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def write_bytes(path: os.PathLike, data: bytes) -> pathlib.Path:
    return write_with(path, lambda temporary: pathlib.Path(temporary).write_bytes(data))


def write_text(path: os.PathLike, text: str) -> pathlib.Path:
    return write_with(path, lambda temporary: pathlib.Path(temporary).write_text(text))


def write_json(path: os.PathLike, value, **dumps_options) -> pathlib.Path:
    """`value` as JSON (json.dumps options pass through), ending in a newline."""
    return write_text(path, json.dumps(value, **dumps_options) + "\n")
