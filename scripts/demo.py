r"""The editor in a browser: flags -> web_demo.DemoEditor -> web_demo.build_app -> web_demo.launch.

    python scripts/demo.py --workdir=runs/celeba            # a training run folder (estimates start AUs)
    python scripts/demo.py --saved_model=models/ganimation/1  # estimates them too when exported with the critic
    python scripts/demo.py --tflite=ganimation_fp16.tflite
    python scripts/demo.py --quickstart     # runs/quickstart, trained first when it is not (~15 min, 2 cores)
    python scripts/demo.py --tflite=ganimation_fp16.tflite --web_page   # the model runs in the browser

--web_page serves the static browser editor (scripts/export_web.py, LiteRT.js on WebGPU or wasm) for a
--tflite model instead of the gradio page: the server only hands out files, the browser edits.

Serves http://127.0.0.1:7860 until Ctrl+C; open it in a browser on this machine. --host=0.0.0.0 serves
other machines too, and --share asks gradio for a public link (both off unless given). The shared test
photos (../shared/data/photos), when present, are offered as examples; --quickstart offers synthetic faces.
Needs the demo's packages: pip install --no-deps -r requirements-demo.txt (see its header).
Exit status: 2 for a user error (no model, two models, a model that does not load), one paragraph.
"""

import importlib.util
import pathlib
import sys
import tempfile

import numpy as np
from absl import flags

from tf_ganimation import cli
from tf_ganimation import flags as training_flags
from tf_ganimation.editing import outputs, static_page, web_demo, web_demo_video
from tf_ganimation.export.backends import load_edit_model
from tf_ganimation.runs import run_folder
from tf_ganimation.synthetic import identity, renderer, synthetic_dataset
from tf_ganimation.training import trainer

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
QUICKSTART_FLAGS = "configs/quickstart.flags"
SHARED_PHOTOS = PROJECT_ROOT.parent / "shared" / "data" / "photos"

flags.DEFINE_string("saved_model", None, "A SavedModel version folder (or its export base) to serve.")
flags.DEFINE_string("tflite", None, "A .tflite model to serve.")
flags.DEFINE_bool("quickstart", False, f"Serve runs/quickstart, training it first with {QUICKSTART_FLAGS} "
                        "when it has no generator.weights.h5 (about 15 minutes on a 2-core CPU).")
flags.DEFINE_bool("web_page", False, "Serve the static browser editor for --tflite (the model runs in the browser, "
                  "with LiteRT.js) instead of the gradio page.")
flags.DEFINE_string("host", "127.0.0.1", "The address to listen on (127.0.0.1: this machine only).")
flags.DEFINE_integer("port", 7860, "The TCP port.")
flags.DEFINE_bool("share", False, "Ask gradio for a public link (tunnelled through gradio's servers).")
flags.DEFINE_string("examples", str(SHARED_PHOTOS), "A folder of example photos (skipped when absent).")
FLAGS = flags.FLAGS  # with the training flags of tf_ganimation.flags, for --quickstart


def quickstart_model() -> tuple[str, tuple[str, ...]]:
    """runs/quickstart (trained first when it has no generator weights) and a few synthetic faces to edit."""
    if not pathlib.Path(QUICKSTART_FLAGS).is_file():
        raise cli.UserError(f"{QUICKSTART_FLAGS} not found: run --quickstart from the project root ({PROJECT_ROOT})")
    FLAGS(["demo.py", f"--flagfile={QUICKSTART_FLAGS}"])  # the training flags, as scripts/train.py reads them
    config, workdir = training_flags.build_config(), training_flags.require_workdir()
    if not (workdir / run_folder.GENERATOR_WEIGHTS).is_file():
        print(f"{workdir} has no trained generator: training it first with {QUICKSTART_FLAGS}. This takes about "
              "15 minutes on a 2-core CPU (a progress bar follows on a terminal); a second run resumes it.",
              file=sys.stderr, flush=True)
        training_flags.write_resolved_flags(workdir)
        result = trainer.train(config, workdir)
        if result["interrupted_by"]:
            sys.exit(128 + result["interrupted_by"])
    examples = []
    rng = np.random.default_rng(0)
    for index in range(4):
        face = renderer.render_face(identity.sample_identity(rng), synthetic_dataset.sample_aus(rng), size=128)
        examples.append(str(outputs.write_photo(face, str(workdir / "demo_examples" / f"face_{index}.png"))))
    return str(workdir), tuple(examples)


def serve_web_page(given: list[str]) -> None:
    """Builds the browser editor for --tflite in a temporary folder and serves it until Ctrl+C."""
    if given != ["tflite"]:
        raise cli.UserError("--web_page runs a .tflite model in the browser: give --tflite=FILE (and no other model)")
    with tempfile.TemporaryDirectory(prefix="web_page_") as folder:
        page = static_page.build_page(FLAGS.tflite, pathlib.Path(folder) / "web")
        server, url = static_page.serve(page, FLAGS.host, FLAGS.port)
        print(f"Serving the browser editor for {FLAGS.tflite} at {url} (Ctrl+C stops it)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}: every setting is a --flag (see --help)")
    given = [name for name in ("workdir", "saved_model", "tflite") if FLAGS[name].value]
    if FLAGS.quickstart and given:
        raise cli.UserError(f"--quickstart serves runs/quickstart: drop --{given[0]}")
    if not FLAGS.quickstart and len(given) != 1:
        raise cli.UserError("give exactly one model: --workdir=RUN, --saved_model=DIR or --tflite=FILE "
                            f"(or --quickstart){'; got --' + ', --'.join(given) if given else ''}")
    if FLAGS.web_page:
        return serve_web_page(given)
    if FLAGS.quickstart:
        model_path, examples = quickstart_model()
    else:
        model_path, examples = FLAGS[given[0]].value, web_demo.example_photos(FLAGS.examples)
    config = web_demo.DemoConfig(host=FLAGS.host, port=FLAGS.port, share=FLAGS.share, examples=examples,
                                 whole_image=FLAGS.quickstart)  # a synthetic face is framed as trained, whole
    demo = web_demo.DemoEditor(load_edit_model(model_path), config)
    if FLAGS.share or FLAGS.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: the demo is reachable from other machines (--host={FLAGS.host}, --share={FLAGS.share})",
              file=sys.stderr)
    videos = None
    if importlib.util.find_spec("av"):  # the video section needs PyAV (requirements-video.txt)
        videos = web_demo_video.VideoDemo(demo.model)
    app = web_demo.build_app(demo, videos=videos)
    print(f"Serving {model_path} at {web_demo.launch(app, config)} (Ctrl+C stops it)", flush=True)
    app.block_thread()


if __name__ == "__main__":
    cli.run(main)
