"""Trains GANimation: flags -> Config -> tf_ganimation.training.train(config, workdir).

    python scripts/train.py --flagfile=configs/emotionet.flags
    python scripts/train.py --flagfile=configs/quickstart.flags   # synthetic faces, ~12 min on 2 CPU cores

Restarting with the same --workdir resumes from the latest checkpoint. SIGINT/SIGTERM save a
checkpoint first. See README.md for the data layouts and every flag (`--helpfull`).
"""

import dataclasses
import json
import os
import sys

from tf_ganimation import cli, flags, training

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}: every setting is a --flag (see --helpfull)")
    config = flags.build_config()
    if FLAGS.dry_run:
        print(flags.resolved_flags(), end="")
        print(json.dumps(dataclasses.asdict(config), indent=2))
        return
    workdir = flags.require_workdir()
    if FLAGS.synthetic_images and not os.path.isdir(config.data.data_dir):
        from tf_ganimation import synthetic  # only the quick start needs the renderer

        print(f"Rendering {FLAGS.synthetic_images} synthetic faces into {config.data.data_dir} ...", file=sys.stderr)
        synthetic.make_dataset(config.data.data_dir, FLAGS.synthetic_images, config.data.image_size, seed=config.data.seed)
    flags.write_resolved_flags(workdir)
    result = training.train(config, workdir)
    print(json.dumps(result), file=sys.stderr)
    if result["interrupted_by"]:
        sys.exit(128 + result["interrupted_by"])


if __name__ == "__main__":
    cli.run(main)
