"""The in-training probe: ground-truth scores of the generator as it trains, on a synthetic dataset.

With RunConfig.eval_every on a synthetic dataset, `training.trainer.train(config, workdir)` makes one
(`training_probe`) on the chief, and its TrainingMonitor calls it with the generator every eval_every
steps and at the end; its scalars go to TensorBoard under evaluation/.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

from tf_ganimation.core.config import Config
from tf_ganimation.evaluation.synthetic_edits import SyntheticEdits, render_edits, score_edits
from tf_ganimation.model import networks
from tf_ganimation.model.edit_model import EditModel, KerasEditModel
from tf_ganimation.synthetic import synthetic_dataset


class SyntheticProbe:
    """Ground-truth scores of a generator while it trains: training.monitor.TrainingMonitor.evaluate calls it.

    `prepare` () -> SyntheticEdits runs at the first call, not at construction: making a probe runs no
    TensorFlow op and renders no face (reading the test faces is an op, and under multi_worker the
    distribution strategy must precede every op). Each call edits the rendered faces with the current
    generator (about 2 s for 128 edits at 64 px on a CPU) and returns the scalars of `score`.
    """

    def __init__(self, prepare: Callable[[], SyntheticEdits]):
        self._prepare, self._edits = prepare, None
        self._generator, self._edit = None, None

    @property
    def edits(self) -> SyntheticEdits:
        if self._edits is None:
            self._edits = self._prepare()
        return self._edits

    def score(self, edit: EditModel) -> dict[str, float]:
        """{"l1_ratio_to_baseline", "changed_region_l1_ratio", "kept_region_l1", "same_aus_l1",
        "attention_mean"} of `edit`; see synthetic_edits.score_edits and metrics.region_metrics."""
        metrics = score_edits(edit, self.edits)
        regions = metrics["regions"]
        return {"l1_ratio_to_baseline": metrics["l1_ratio_to_baseline"],
                "changed_region_l1_ratio": regions.get("changed", {}).get("l1_ratio_to_baseline", math.nan),
                "kept_region_l1": regions.get("kept", {}).get("edit_l1", math.nan),
                "same_aus_l1": metrics["same_aus"]["l1"],
                "attention_mean": metrics["attention"]["mean"]}

    def __call__(self, generator: networks.Generator) -> dict[str, float]:
        if generator is not self._generator:  # one traced function per generator
            image_size = self.edits.sources.shape[1]
            self._generator = generator
            self._edit = KerasEditModel(generator, image_size, source="the training generator")
        return self.score(self._edit)


def training_probe(config: Config, max_images: int = 32, num_targets: int = 4) -> SyntheticProbe | None:
    """The SyntheticProbe of a run's data: its first `max_images` test faces; None unless synthetic.

    Only checks that the dataset is synthetic (identities.json); no TensorFlow op runs until the
    probe's first call, which reads the test ids and AUs and renders the faces (no image file is read).
    """
    if not os.path.isfile(os.path.join(config.data.data_dir, synthetic_dataset.IDENTITIES_FILE)):
        return None

    def prepare() -> SyntheticEdits:
        ids, aus = synthetic_dataset.load_split(config.data.data_dir, "test")
        identities = synthetic_dataset.load_identities(config.data.data_dir)
        return render_edits(identities, ids[:max_images], aus[:max_images], config.model.image_size, num_targets)

    return SyntheticProbe(prepare)
