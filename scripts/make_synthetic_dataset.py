"""Renders a synthetic AU-labelled face dataset in the GANimation layout (tf_ganimation/synthetic/synthetic_dataset.py).

    python scripts/make_synthetic_dataset.py --out data/synthetic64 --num_images 10000 --image_size 64 --seed 0

writes DIR/imgs/<id>.png, DIR/aus_openface.pkl, DIR/train_ids.csv, DIR/test_ids.csv, DIR/identities.json.
"""

from absl import flags

from tf_ganimation import cli
from tf_ganimation.synthetic import synthetic_dataset

_OUT = flags.DEFINE_string("out", None, "Dataset folder to write (created if missing).")
_NUM_IMAGES = flags.DEFINE_integer("num_images", 10000, "Number of images.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 128, "Image side in pixels.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed; the same seed gives the same dataset.")
_TEST_FRACTION = flags.DEFINE_float("test_fraction", 0.1, "Share of identities held out as the test set.")
_IMAGES_PER_IDENTITY = flags.DEFINE_integer("images_per_identity", 5, "AU vectors rendered per identity.")
_NUM_WORKERS = flags.DEFINE_integer("num_workers", 0, "Rendering processes; 0: one per CPU core.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace a dataset already in --out.")
flags.mark_flag_as_required("out")


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}: every setting is a --flag")
    summary = synthetic_dataset.make_dataset(
        _OUT.value, _NUM_IMAGES.value, image_size=_IMAGE_SIZE.value, seed=_SEED.value,
        test_fraction=_TEST_FRACTION.value, images_per_identity=_IMAGES_PER_IDENTITY.value,
        num_workers=_NUM_WORKERS.value, overwrite=_OVERWRITE.value, progress=True)
    print(f"wrote {summary.num_images} images of {summary.image_size}x{summary.image_size} "
          f"({summary.num_identities} identities; {summary.num_train_images} train, {summary.num_test_images} test "
          f"images) to {summary.out_dir} in {summary.seconds:.1f} s")


if __name__ == "__main__":
    cli.run(main)
