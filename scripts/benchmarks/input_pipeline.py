"""Times the training input pipeline (`data.pipeline.make_training_dataset`); prints one JSON object.

    python scripts/benchmarks/input_pipeline.py                                   # 128 px, batch 25 x 5
    python scripts/benchmarks/input_pipeline.py --image_size=32 --batch_size=16 --n_critic=2 --num_images=2000
    python scripts/benchmarks/input_pipeline.py --work_dir=/tmp/faces128 --layouts=ganimation --cache_modes=off
    python scripts/benchmarks/input_pipeline.py --data_dir=/data/faces --data_format=tfrecord  # your own data
    cd <older checkout> && PYTHONPATH=$PWD python <this checkout>/scripts/benchmarks/input_pipeline.py \
        --work_dir=/tmp/faces128                   # another version's pipeline on the same files

Without --data_dir, --num_images synthetic faces are rendered (synthetic_dataset.make_dataset) into
--work_dir (a temporary folder when empty; a folder that already holds them is reused, so two
checkouts can be timed on the same files) and written as --num_shards TFRecord shards
(tfrecords.write_dataset) for the tfrecord layout. For each layout and cache mode, one stream is
built, --warmup elements are drawn untimed (the cache, when on, is filled while building), then
--repeats windows of --elements elements are timed; the median is reported. An element holds
batch_size * n_critic images. images/s per core divides by os.cpu_count(), the cores tf.data's
threads may use. The data flags (image size, batch, n_critic, flip, shuffle buffer, seed) are
the training flags (tf_ganimation/flags.py). A checkout whose DataConfig has no cache_images skips
the "on" mode. Results go in BENCHMARKS.md with the command, the machine and the date; they are
never asserted in tests.
"""

import dataclasses
import json
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time

from tf_ganimation import cli  # before anything loads TensorFlow: cli readies its start (cli.py)

# isort: split
import tensorflow as tf
from absl import flags

from tf_ganimation import flags as training_flags  # noqa: F401 (defines the data flags)
from tf_ganimation.core.config import DataConfig
from tf_ganimation.data import inventory, pipeline, tfrecords
from tf_ganimation.synthetic import synthetic_dataset

flags.DEFINE_integer("num_images", 1000, "Synthetic faces to render when --data_dir is empty.")
flags.DEFINE_list("layouts", ["ganimation", "tfrecord"], "Layouts of the synthetic faces to time (image "
                  "folder, TFRecords); ignored with --data_dir.")
flags.DEFINE_list("cache_modes", ["off", "on"], "--cache_images settings to time: off, on.")
flags.DEFINE_string("work_dir", "", "Folder for the synthetic faces (reused when it holds them); empty: a "
                    "temporary folder, removed at the end.")
flags.DEFINE_integer("num_shards", 4, "TFRecord shards written for the tfrecord layout.")
flags.DEFINE_integer("elements", 20, "Elements (training steps) per timed window.")
flags.DEFINE_integer("warmup", 3, "Untimed elements first.")
flags.DEFINE_integer("repeats", 3, "Timed windows (the median is reported).")
FLAGS = flags.FLAGS

_HAS_CACHE = "cache_images" in {field.name for field in dataclasses.fields(DataConfig)}


def _synthetic_layouts(work_dir: str, image_size: int) -> dict[str, str]:
    """{layout: data_dir} of --num_images synthetic faces in the image-folder and TFRecord layouts."""
    folder, records = os.path.join(work_dir, "faces"), os.path.join(work_dir, "records")
    if not os.path.exists(os.path.join(folder, "train_ids.csv")):
        synthetic_dataset.make_dataset(folder, FLAGS.num_images, image_size=image_size, seed=0, progress=False,
                                       overwrite=True)
    if "tfrecord" in FLAGS.layouts and not os.path.exists(os.path.join(records, tfrecords.INFO_FILE)):
        shutil.rmtree(records, ignore_errors=True)
        examples = inventory.load_examples(DataConfig(data_dir=folder, image_size=image_size))
        tfrecords.write_dataset(examples, records, num_shards=FLAGS.num_shards)
    return {"ganimation": folder, "tfrecord": records}


def _time_stream(config: DataConfig) -> dict:
    """images/s of make_training_dataset(config): the median over --repeats windows of --elements elements."""
    examples = inventory.load_examples(config)
    images_per_element = config.batch_size * config.n_critic
    start = time.perf_counter()
    iterator = iter(pipeline.make_training_dataset(config, examples=examples))
    element = next(iterator)
    first_element_seconds = time.perf_counter() - start
    for _ in range(FLAGS.warmup - 1):
        element = next(iterator)
    rates = []
    for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        for _ in range(FLAGS.elements):
            element = next(iterator)
        rates.append(FLAGS.elements * images_per_element / (time.perf_counter() - start))
    median = statistics.median(rates)
    return {"images_per_second": round(median, 1), "images_per_second_per_core": round(median / os.cpu_count(), 1),
            "runs": [round(rate, 1) for rate in rates], "first_element_seconds": round(first_element_seconds, 2),
            "train_examples": len(examples.train), "real_image": f"{element['real_image'].dtype.name} "
                                                                 f"{list(element['real_image'].shape)}"}


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}: every setting is a --flag")
    for mode in FLAGS.cache_modes:
        if mode not in ("off", "on"):
            raise cli.UserError(f"--cache_modes={','.join(FLAGS.cache_modes)} is invalid: expected off and/or on")
    # Only the data section: its image_size need not suit the critic's depth (training_flags.build_config).
    settings = DataConfig(**{field.name: FLAGS[field.name].value for field in dataclasses.fields(DataConfig)})
    temporary = None
    if settings.data_dir:
        layouts = {settings.data_format: settings.data_dir}
    else:
        unknown = set(FLAGS.layouts) - {"ganimation", "tfrecord"}
        if unknown:
            raise cli.UserError(f"--layouts={','.join(FLAGS.layouts)} is invalid: expected ganimation and/or tfrecord")
        work_dir = FLAGS.work_dir or (temporary := tempfile.mkdtemp(prefix="input_pipeline_"))
        folders = _synthetic_layouts(work_dir, settings.image_size)
        layouts = {layout: folders[layout] for layout in FLAGS.layouts}
    results = []
    try:
        for layout, data_dir in layouts.items():
            for mode in FLAGS.cache_modes:
                row = {"layout": layout, "cache_images": mode}
                if mode == "on" and not _HAS_CACHE:
                    results.append({**row, "skipped": "this tf_ganimation's DataConfig has no cache_images"})
                    continue
                overrides = {"data_dir": data_dir, "data_format": layout}
                if _HAS_CACHE:
                    overrides["cache_images"] = mode == "on"
                results.append({**row, **_time_stream(dataclasses.replace(settings, **overrides))})
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
    print(json.dumps({
        "results": results,
        "settings": {name: FLAGS[name].value for name in (
            "image_size", "batch_size", "n_critic", "horizontal_flip", "shuffle_buffer", "num_images", "num_shards",
            "elements", "warmup", "repeats")},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "load_average": [round(load, 2) for load in os.getloadavg()], "tensorflow": tf.__version__},
    }, indent=2))


if __name__ == "__main__":
    cli.run(main)
