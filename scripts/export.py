r"""Exports a trained generator as a versioned SavedModel for TF Serving (tf_ganimation/export/saved_model.py).

Example (~15 s for the paper-size generator alone on a 2-core CPU; 33.9 MB of weights, 213.3 MB with the critic):
  python scripts/export.py --workdir runs/quickstart --export_dir models/ganimation
Prints the new version folder (models/ganimation/<N>, N one more than the highest there) and its
signatures: with the run's critic (critic.weights.h5; --nocritic leaves it out) the export has
`estimate_aus` too, the critic's AU head, which reenactment and the demo's start AUs need. A run folder
that is incomplete, or a version that exists already (never overwritten), is a user error: one
paragraph and exit status 2. Serve it with `python -m serving.local_server --model_base_path
models/ganimation` (development) or tensorflow_model_server with serving/models.config (production);
see serving/README.md.
"""

from absl import flags, logging

from tf_ganimation import cli
from tf_ganimation.export import saved_model

flags.DEFINE_string("workdir", None, "The training run's folder (config.json and generator.weights.h5).")
flags.DEFINE_string("export_dir", "models/ganimation", "The model's base path: versions go in <export_dir>/<N>/.")
flags.DEFINE_integer("version", None, "The version number; default: one more than the highest existing.")
flags.DEFINE_bool("critic", True, "Export the run's critic too, as the estimate_aus signature (a face's AUs).")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}: every setting is a --flag (see --help)")
    if not FLAGS.workdir:
        raise cli.UserError("--workdir is required: the training run folder to export")
    logging.set_verbosity(logging.WARNING)  # tf.saved_model.save logs a line per function otherwise
    path = saved_model.export_from_workdir(FLAGS.workdir, FLAGS.export_dir, FLAGS.version, with_critic=FLAGS.critic)
    print(f"exported {path} (signatures: {', '.join(saved_model.load_metadata(path)['signatures'])})")


if __name__ == "__main__":
    cli.run(main)
