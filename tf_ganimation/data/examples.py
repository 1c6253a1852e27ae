"""A validated dataset: its usable examples per split, and a summary of what was found and skipped.

`inventory.load_examples` makes `Examples`; the input pipelines (pipeline.py) read them and
`tfrecords.write_dataset` converts them. Plain Python + numpy, and below both inventory.py and
tfrecords.py, so inventory.py can read shards without tfrecords.py importing it back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np


@dataclasses.dataclass(frozen=True)
class DataSummary:
    """What `load_examples` found: usable examples per split, skipped ones by reason. `str()` to log it.

    Attributes:
        data_dir: the folder read.
        data_format: the resolved layout: ganimation | openface | tfrecord.
        found: what format detection saw (or what was checked for a named format).
        split_rule: how train/test were decided.
        usable: split name -> number of usable examples.
        skipped: reason -> names (ids, or shard files) of the skipped examples, in order.
        notes: warnings that do not skip anything (e.g. unlisted images, suspiciously small AUs).
        images_checked: how many image files were opened and decoded.
        check_seconds: the wall time of that check.
    """

    data_dir: str
    data_format: str
    found: str
    split_rule: str
    usable: Mapping[str, int]
    skipped: Mapping[str, tuple[str, ...]]
    notes: tuple[str, ...] = ()
    images_checked: int = 0
    check_seconds: float = 0.0

    @property
    def num_usable(self) -> int:
        return sum(self.usable.values())

    @property
    def num_skipped(self) -> int:
        return sum(len(names) for names in self.skipped.values())

    def skipped_counts(self) -> dict[str, int]:
        """reason -> how many examples were skipped for it."""
        return {reason: len(names) for reason, names in self.skipped.items()}

    def __str__(self) -> str:
        usable = " + ".join(f"{count} {split}" for split, count in self.usable.items())
        lines = [f"data {self.data_dir} ({self.data_format}: {self.found}; split: {self.split_rule})",
                 f"  usable: {usable} = {self.num_usable}; skipped: {self.num_skipped}"]
        for reason, names in self.skipped.items():
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            lines.append(f"  skipped, {reason}: {len(names)} ({shown})")
        if self.images_checked:
            rate = self.images_checked / max(self.check_seconds, 1e-9)
            lines.append(f"  images checked: {self.images_checked} in {self.check_seconds:.1f} s ({rate:.0f}/s)")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Split:
    """The usable examples of one split.

    Attributes:
        ids: example ids (file names without extension), in split order.
        aus: float32 [len(ids), NUM_AUS] in [0, 1], normalised OpenFace intensities.
        image_paths: (a)/(b): the image file of each id; (c): empty.
        record_paths: (c): the TFRecord shards holding them; (a)/(b): empty.
    """

    ids: tuple[str, ...]
    aus: np.ndarray
    image_paths: tuple[str, ...] = ()
    record_paths: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.ids)


@dataclasses.dataclass(frozen=True)
class Examples:
    """A validated dataset: `load_examples`' result, passed to the dataset builders."""

    data_dir: str
    data_format: str
    train: Split
    test: Split
    summary: DataSummary

    def split(self, name: str) -> Split:
        if name not in ("train", "test"):
            raise ValueError(f"split={name!r} is invalid: expected 'train' or 'test'")
        return getattr(self, name)
