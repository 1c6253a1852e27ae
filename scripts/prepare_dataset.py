r"""Prepares a GANimation dataset for training.

Steps, in the order they run (each one is optional; at least one must be asked for):
  1. (to come) --crop_faces: detect, align and crop faces from photos into the ganimation layout.
  2. --to_tfrecord OUT: convert a ganimation or openface layout (see tf_ganimation/data.py) into
     sharded TFRecords (tf_ganimation/tfrecords.py). Images are copied as they are; every image is
     checked first and unusable examples are skipped and listed.

Example (a few seconds for the synthetic set, ~2 min per 100k 128-px JPEGs on 2 cores):
  python scripts/prepare_dataset.py --data_dir data/synthetic --to_tfrecord data/synthetic_tfrecord \
      --num_shards 4
Prints the data summary and the path of dataset_info.json; exits with status 1 and a one-paragraph
message on a missing or malformed input.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tf_ganimation import data, tfrecords  # noqa: E402
from tf_ganimation.config import DataConfig  # noqa: E402

flags.DEFINE_string("data_dir", None, "The source dataset folder (ganimation or openface layout).")
flags.DEFINE_enum("data_format", "auto", ["auto", "ganimation", "openface"], "The source layout.")
flags.DEFINE_string("to_tfrecord", None, "Write the dataset as sharded TFRecords into this folder.")
flags.DEFINE_integer("num_shards", 0, "Shards per split for --to_tfrecord; 0: about 128 MiB each.")
flags.DEFINE_integer("seed", 0, "Seed of the shuffle of the training split before sharding.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    if not FLAGS.data_dir:
        raise app.UsageError("--data_dir is required")
    if not FLAGS.to_tfrecord:
        raise app.UsageError("nothing to do: pass --to_tfrecord OUT")
    try:
        # Step 1 (--crop_faces) will produce the ganimation layout that step 2 reads.
        config = DataConfig(data_dir=FLAGS.data_dir, data_format=FLAGS.data_format)
        examples = data.load_examples(config)
        info = tfrecords.write_dataset(examples, FLAGS.to_tfrecord, FLAGS.num_shards, FLAGS.seed)
    except (FileNotFoundError, ValueError) as error:
        print(f"prepare_dataset: {error}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{split}: {value['num_examples']} examples in {value['num_shards']} shards"
                       for split, value in info["splits"].items())
    print(f"wrote {os.path.join(FLAGS.to_tfrecord, tfrecords.INFO_FILE)} ({counts})")
    return 0


if __name__ == "__main__":
    app.run(main)
