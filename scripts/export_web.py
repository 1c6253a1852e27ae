"""Builds the browser editor for a converted generator: a static page that edits photos with LiteRT.js.

    python scripts/convert_tflite.py --workdir=runs/quickstart --out=runs/quickstart_fp16.tflite
    python scripts/export_web.py --tflite=runs/quickstart_fp16.tflite --out=runs/web
    python scripts/export_web.py --tflite=runs/quickstart_fp16.tflite --out=runs/web --serve   # http://127.0.0.1:8000

writes one folder with everything the page loads (the page, the model, config.json and LiteRT.js, from
tf_ganimation/editing/web_page/node_modules: run `npm ci` there first, with Node 20). Serve it with any
static server, or --serve. The page runs on WebGPU where the browser offers it, on wasm otherwise.
Exit status 2 for a user error (no model, LiteRT.js not installed, a folder that is not a page).
"""

from absl import flags

from tf_ganimation import cli
from tf_ganimation.editing import static_page

_TFLITE = flags.DEFINE_string("tflite", None, "The generator's .tflite (batch 1), from scripts/convert_tflite.py.")
_OUT = flags.DEFINE_string("out", None, "The folder to write (replaced if it holds a page built before).")
_GPU_PRECISION = flags.DEFINE_enum("gpu_precision", "fp32", static_page.GPU_PRECISIONS,
                                   "WebGPU arithmetic: fp32 (faithful) or fp16 (see BENCHMARKS.md, float16 parity).")
_SERVE = flags.DEFINE_bool("serve", False, "Serve the folder afterwards until Ctrl+C.")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "The address --serve listens on (127.0.0.1: this machine only).")
_PORT = flags.DEFINE_integer("port", 8000, "The TCP port of --serve.")
flags.mark_flags_as_required(["tflite", "out"])


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}: every setting is a --flag")
    page = static_page.build_page(_TFLITE.value, _OUT.value, _GPU_PRECISION.value)
    print(f"wrote {page} (open index.html through a web server; file:// cannot load WebAssembly)")
    if _SERVE.value:
        server, url = static_page.serve(page, _HOST.value, _PORT.value)
        print(f"Serving {page} at {url} (Ctrl+C stops it)", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    cli.run(main)
