"""The journal of a dataset preparation (prepare.py): what became of each photo, so a re-run continues.

    <out>/faces.jsonl          JOURNAL_FILE: one JSON record per photo processed, appended as each one
                               finishes; an id's latest record is the one that counts
    <out>/prepare_info.json    INFO_FILE: the settings (a re-run must use the same) and the last run's counts

A run killed at any moment loses at most the photo in flight: records are flushed one by one, a line
cut short is ignored when read and ended before the next record is appended, and prepare.py names a
crop in a record only once the crop's file is complete.

A record's "status" is KEPT or the reason the photo was skipped. The statuses in FINAL do not change on
a re-run with the same settings; the others (AU problems) are retried, so adding CSVs and running
again picks those photos up.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
from collections.abc import Callable, Iterator

from tf_ganimation.core import atomic

JOURNAL_FILE = "faces.jsonl"
INFO_FILE = "prepare_info.json"

# Statuses of a photo; all but KEPT are reasons it was skipped.
KEPT = "kept"
UNREADABLE_PHOTO = "unreadable photo"
NO_FACE = "no face"
SEVERAL_FACES = "several faces"
NO_AU_FILE = "no AU file"
DUPLICATE_ID = "duplicate id"
FINAL = (KEPT, UNREADABLE_PHOTO, NO_FACE, SEVERAL_FACES)


def read_journal(path: pathlib.Path) -> dict[str, dict]:
    """{id: its latest record} from faces.jsonl; a line cut short by a killed run is ignored."""
    records = {}
    if path.is_file():
        with open(path, encoding="utf-8") as journal:
            for line in journal:
                try:
                    record = json.loads(line)
                    records[record["id"]] = record
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
    return records


@contextlib.contextmanager
def appending(path: pathlib.Path) -> Iterator[Callable[[dict], None]]:
    """Opens the journal at `path` (created if absent) and yields `append(record)`.

    `append` writes the record as one JSON line and flushes it, so a killed run loses at most the
    photo in flight.
    """
    with open(path, "a", encoding="utf-8") as journal:
        if journal.tell() and not path.read_bytes().endswith(b"\n"):
            journal.write("\n")  # end the line a killed run cut short, so the next record is whole

        def append(record: dict) -> None:
            journal.write(json.dumps(record) + "\n")
            journal.flush()

        yield append


def is_finished(record: dict | None, crops_dir: pathlib.Path, several_faces: str, with_aus: bool) -> bool:
    """Whether a photo with this latest record needs no processing in this run.

    Args:
        record: the photo's latest journal record, None when it has none.
        crops_dir: the folder of the crops (`<out>/imgs`).
        several_faces: this run's choice for photos with several faces ("largest" or "skip").
        with_aus: whether this run reads AU CSVs.
    """
    if record is None or record["status"] not in FINAL:
        return False
    if record["status"] == SEVERAL_FACES and several_faces == "largest":
        return False  # skipped under "skip" before; "largest" keeps it now
    if record["status"] == KEPT:
        if not (crops_dir / record["crop"]).is_file():
            return False
        if with_aus and record.get("raw_aus") is None:
            return False  # cropped by a run without CSVs: read its AUs now
    return True


def check_settings(out: pathlib.Path, settings: dict) -> None:
    """Records `settings` in `<out>/prepare_info.json`, or raises when `out` was prepared with others.

    Raises:
        ValueError: the info file holds other settings (the message shows both).
    """
    path = out / INFO_FILE
    info = json.loads(path.read_text()) if path.is_file() else {}
    if info.get("settings") and info["settings"] != settings:
        raise ValueError(
            f"{out} was prepared with other settings ({json.dumps(info['settings'], sort_keys=True)}; now "
            f"{json.dumps(settings, sort_keys=True)}): use another --out, or the same settings to continue")
    atomic.write_json(path, {**info, "settings": settings}, indent=2)


def update_info(out: pathlib.Path, fields: dict) -> None:
    """Adds (or replaces) `fields` in `<out>/prepare_info.json`, which `check_settings` has written."""
    path = out / INFO_FILE
    atomic.write_json(path, {**json.loads(path.read_text()), **fields}, indent=2)
