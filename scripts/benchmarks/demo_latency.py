"""The web demo's latency from a slider release to the new image, with the photo's detection cached.

    python scripts/benchmarks/demo_latency.py      # paper-size generator (64 filters, 6 blocks, 128 px), random weights
    python scripts/benchmarks/demo_latency.py --generator_filters=8 --generator_residual_blocks=1 --image_size=32

Loads --photo once (MTCNN detection, then cached, as on the page), then times --runs edits at random AUs
after --warmup untimed ones, at four depths: the generator on the face crop alone; the paste-back
alone; web_demo.on_edit (generator, paste-back, maps: the server's work); and the whole round trip
through the served page on 127.0.0.1 (gradio's queue, the PNG encoding of the photo and maps, and
their download, by gradio_client as a browser would). Prints a markdown table of the median and p95.
A benchmark, not a test: numbers depend on the machine and on what else runs on it.
"""

import logging
import pathlib
import socket
import time

from tf_ganimation import cli  # before anything loads TensorFlow: cli readies its start (cli.py)

# isort: split
import keras
import numpy as np
from absl import flags
from gradio_client import Client, handle_file

from tf_ganimation import flags as training_flags
from tf_ganimation.core import action_units, pixels
from tf_ganimation.core.config import ModelConfig
from tf_ganimation.editing import web_demo
from tf_ganimation.model import edit_model, networks

_PHOTO = flags.DEFINE_string(
    "photo", str(pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "photos" / "astronaut.png"),
    "The photo to edit (one face).")
_RUNS = flags.DEFINE_integer("runs", 20, "Timed edits per row (median and p95 are reported).")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed edits before timing each row.")

FLAGS = training_flags.FLAGS


def _time(function, aus_list, warmup) -> np.ndarray:
    """Milliseconds of function(aus) for each AU vector, after `warmup` untimed calls."""
    for aus in aus_list[:warmup]:
        function(aus)
    times = []
    for aus in aus_list[warmup:]:
        started = time.perf_counter()
        function(aus)
        times.append(1000 * (time.perf_counter() - started))
    return np.array(times)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}: every setting is a --flag")
    # critic_layers=2 only so that ModelConfig accepts small sizes; the critic is not built.
    model_config = ModelConfig(image_size=FLAGS.image_size, generator_filters=FLAGS.generator_filters,
                               generator_residual_blocks=FLAGS.generator_residual_blocks, critic_layers=2)
    keras.utils.set_random_seed(FLAGS.seed)
    model = edit_model.KerasEditModel(networks.build_generator(model_config), model_config.image_size)
    demo = web_demo.DemoEditor(model, web_demo.DemoConfig(port=_free_port()))
    started = time.perf_counter()
    state = web_demo.on_photo(demo, _PHOTO.value, False, False)["state"]
    if state is None:
        raise cli.UserError(f"no face to edit in {_PHOTO.value}")
    first_ms = 1000 * (time.perf_counter() - started)
    loaded = demo.cached(state["key"])
    crops = pixels.uint8_to_unit(loaded.crops[0].crop[None])
    outputs = model(crops, np.zeros([1, action_units.NUM_AUS], np.float32))
    rng = np.random.default_rng(FLAGS.seed)
    count = _WARMUP.value + _RUNS.value
    aus_list = [rng.uniform(0, 1, action_units.NUM_AUS).astype(np.float32) for _ in range(count)]

    rows = {
        f"generator on the {FLAGS.image_size}-px crop": _time(lambda aus: model(crops, aus[None]), aus_list,
                                                              _WARMUP.value),
        "paste-back into the photo": _time(lambda aus: demo.face_editor.paste(
            loaded.photo, loaded.crops, outputs["color"], outputs["attention"]), aus_list, _WARMUP.value),
        "on_edit (the server's work)": _time(lambda aus: web_demo.on_edit(demo, state, aus), aus_list, _WARMUP.value),
    }
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    app = web_demo.build_app(demo)
    url = web_demo.launch(app, demo.config)
    try:
        client = Client(url, verbose=False)
        client.predict(handle_file(_PHOTO.value), False, False, api_name="/photo_event")  # this client's photo
        rows["slider release -> new image, via 127.0.0.1"] = _time(
            lambda aus: client.predict(*[float(value) for value in aus], api_name="/edit_event"),
            aus_list, _WARMUP.value)
    finally:
        app.close()

    height, width = loaded.photo.shape[:2]
    print(f"generator: {FLAGS.generator_filters} filters, {FLAGS.generator_residual_blocks} residual blocks, "
          f"{FLAGS.image_size} px, random weights; photo {pathlib.Path(_PHOTO.value).name} {width}x{height}, "
          f"1 face; first load (decode + MTCNN + first edit) {first_ms:.0f} ms; {_RUNS.value} timed edits "
          f"after {_WARMUP.value} warm-up ones\n")
    print("| step | median | p95 |")
    print("|---|---|---|")
    for name, times in rows.items():
        print(f"| {name} | {np.median(times):.0f} ms | {np.percentile(times, 95):.0f} ms |")


if __name__ == "__main__":
    cli.run(main)
