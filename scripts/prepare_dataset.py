r"""Prepares a GANimation dataset for training.

Steps, in the order they run (each one is optional; at least one must be asked for):
  1. --photos DIR --out OUT [--openface_csv CSV_DIR]: detect, align and crop the face of every photo
     (tf_ganimation/prepare.py, the same crop as the editor) into the ganimation layout in OUT, with
     the AU table from the OpenFace CSVs matched by file stem. Uses every core; re-running continues
     where the last run stopped. Photos without a face, with several faces (--several_faces) or
     without an AU row are skipped and listed.
  2. --to_tfrecord OUT2: convert a ganimation or openface layout (step 1's OUT, or --data_dir) into
     sharded TFRecords (tf_ganimation/tfrecords.py). Images are copied as they are; every image is
     checked first and unusable examples are skipped and listed.

Examples:
  python scripts/prepare_dataset.py --photos photos/ --openface_csv photos_openface/ --out data/faces \
      --to_tfrecord data/faces_tfrecord
  python scripts/prepare_dataset.py --data_dir data/synthetic --to_tfrecord data/synthetic_tfrecord \
      --num_shards 4      # a few seconds; ~2 min per 100k 128-px JPEGs on 2 cores
Prints the summary of each step; a missing or malformed input exits with status 2 and a one-paragraph
message.
"""

from __future__ import annotations

import os

from absl import flags

from tf_ganimation import cli
from tf_ganimation.core.config import DataConfig
from tf_ganimation.data import inventory, prepare, tfrecords

flags.DEFINE_string("photos", None, "Step 1: a folder of photos (JPEG, PNG, WebP) to crop faces from.")
flags.DEFINE_string("openface_csv", None, "Step 1: OpenFace CSVs, one per photo, named after it (abc.jpg -> "
                    "abc.csv). Without them the crops get no AU table (see prepare.py).")
flags.DEFINE_string("out", None, "Step 1: the dataset folder to write (ganimation layout).")
flags.DEFINE_integer("image_size", 128, "Step 1: side of the face crops, the model's image_size.")
flags.DEFINE_enum("several_faces", "largest", list(prepare.SEVERAL_FACES_CHOICES),
                  "Step 1: for a photo with several faces, keep the largest or skip the photo.")
flags.DEFINE_integer("test_percent", 10, "Step 1: percentage of the faces in the test split (by MD5 of the id).")
flags.DEFINE_integer("workers", 0, "Step 1: processes, each with its own face detector; 0: every core.")
flags.DEFINE_enum("crop_format", "jpg", list(prepare.CROP_FORMATS), "Step 1: file format of the crops.")
flags.DEFINE_string("data_dir", None,
                    "Step 2 without step 1: the source dataset folder (ganimation or openface layout).")
flags.DEFINE_enum("data_format", "auto", ["auto", "ganimation", "openface"], "Step 2: the source layout.")
flags.DEFINE_string("to_tfrecord", None, "Step 2: write the dataset as sharded TFRecords into this folder.")
flags.DEFINE_integer("num_shards", 0, "Step 2: shards per split; 0: about 128 MiB each.")
flags.DEFINE_integer("seed", 0, "Step 2: seed of the shuffle of the training split before sharding.")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}: every setting is a --flag (see --help)")
    if not (FLAGS.photos or FLAGS.to_tfrecord):
        raise cli.UserError("nothing to do: pass --photos DIR --out OUT (face crops) and/or --to_tfrecord OUT2")
    data_dir = FLAGS.data_dir
    if FLAGS.photos:
        if not FLAGS.out:
            raise cli.UserError("--photos needs --out, the dataset folder to write")
        if FLAGS.data_dir:
            raise cli.UserError("give --photos (crop faces, then convert --out) or --data_dir (convert it), not both")
        if FLAGS.to_tfrecord and not FLAGS.openface_csv:
            raise cli.UserError("--to_tfrecord needs AUs, but without --openface_csv the crops have none: run "
                                "OpenFace on the crops first (see the note printed by --photos alone)")
        config = prepare.PrepareConfig(
            photos_dir=FLAGS.photos, out_dir=FLAGS.out, openface_dir=FLAGS.openface_csv or "",
            image_size=FLAGS.image_size, several_faces=FLAGS.several_faces, test_percent=FLAGS.test_percent,
            workers=FLAGS.workers, crop_format=FLAGS.crop_format)
        print(prepare.prepare_photos(config))
        data_dir = FLAGS.out
    if FLAGS.to_tfrecord:
        if not data_dir:
            raise cli.UserError("--to_tfrecord needs --data_dir (or --photos and --out)")
        examples = inventory.load_examples(DataConfig(data_dir=data_dir, data_format=FLAGS.data_format,
                                                 image_size=FLAGS.image_size))
        info = tfrecords.write_dataset(examples, FLAGS.to_tfrecord, FLAGS.num_shards, FLAGS.seed)
        counts = ", ".join(f"{split}: {value['num_examples']} examples in {value['num_shards']} shards"
                           for split, value in info["splits"].items())
        print(f"wrote {os.path.join(FLAGS.to_tfrecord, tfrecords.INFO_FILE)} ({counts})")


if __name__ == "__main__":
    cli.run(main)
