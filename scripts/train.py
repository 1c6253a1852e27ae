"""Trains GANimation: flags -> Config -> tf_ganimation.training.trainer.train(config, workdir).

    python scripts/train.py --flagfile=configs/emotionet.flags
    python scripts/train.py --flagfile=configs/quickstart.flags   # synthetic faces, ~15 min on 2 CPU cores

With --synthetic_images=N and no --data_dir folder, N synthetic faces are rendered there first.
Restarting with the same --workdir resumes from the latest checkpoint. SIGINT/SIGTERM save a
checkpoint first. See README.md for the data layouts and every flag (`--helpfull`).

Exit status: 0 done; 2 a user error (bad flag, missing data, unreadable checkpoints), one paragraph;
3 a NaN/Inf loss (the message names the step and the terms; the last checkpoint is kept);
128 + N stopped by signal N after saving a checkpoint.
"""

import dataclasses
import json
import sys

from tf_ganimation import cli, flags
from tf_ganimation.synthetic import synthetic_dataset
from tf_ganimation.training import faults, strategy, trainer

FLAGS = flags.FLAGS
NONFINITE_EXIT_CODE = 3


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}: every setting is a --flag (see --helpfull)")
    config = flags.build_config()
    if FLAGS.dry_run:
        print(flags.resolved_flags(), end="")
        print(json.dumps(dataclasses.asdict(config), indent=2))
        return
    workdir = flags.require_workdir()
    if strategy.is_chief(config.run):  # multi_worker: only the chief writes into the shared workdir
        flags.write_resolved_flags(workdir)
    synthetic_dataset.render_missing(config.data)  # --synthetic_images: the quick start's faces, when missing
    try:
        result = trainer.train(config, workdir)
    except faults.NonFiniteLossError as error:
        cli.fail(str(error), exit_code=NONFINITE_EXIT_CODE)
    print(json.dumps(result), file=sys.stderr)
    if result["interrupted_by"]:
        sys.exit(128 + result["interrupted_by"])


if __name__ == "__main__":
    cli.run(main)
