r"""Exports a trained generator as a versioned SavedModel for TF Serving (tf_ganimation/saved_model.py).

Example (~15 s for the paper-size generator on 2 CPU cores; writes 33.9 MB of weights):
  python scripts/export.py --workdir workdirs/celeba --export_dir models/ganimation
Prints the new version folder (models/ganimation/<N>, N one more than the highest there); exits with
status 1 and a one-paragraph message when the run folder is incomplete or the version exists.
Serve it with `python -m serving.local_server --model_base_path models/ganimation` (development) or
tensorflow_model_server with serving/models.config (production); see serving/README.md.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tf_ganimation.export import saved_model  # noqa: E402

flags.DEFINE_string("workdir", None, "The training run's folder (config.json and generator.weights.h5).")
flags.DEFINE_string("export_dir", "models/ganimation", "The model's base path: versions go in <export_dir>/<N>/.")
flags.DEFINE_integer("version", None, "The version number; default: one more than the highest existing.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    if not FLAGS.workdir:
        raise app.UsageError("--workdir is required")
    logging.set_verbosity(logging.WARNING)  # tf.saved_model.save logs a line per function otherwise
    try:
        path = saved_model.export_from_workdir(FLAGS.workdir, FLAGS.export_dir, FLAGS.version)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        print(f"export: {error}", file=sys.stderr)
        return 1
    print(f"exported {path}")
    return 0


if __name__ == "__main__":
    app.run(main)
