r"""The command line of the serving clients: `python -m serving.client`.

Edits one face with the served model (tensorflow_model_server or serving/local_server.py), over gRPC
(--target) or REST (--rest). It sends the face file as it is (any size, JPEG/PNG/...) through the
`encoded` signature, which decodes and resizes it on the server; --frames reads the image, and
animate() resizes it on the client.

  python -m serving.client --target localhost:8500 --image face.jpg --aus AU12=1.0,AU06=0.8 --out out.png
  python -m serving.client --rest http://localhost:8501 --image face.jpg --expression happy --out out.png
  python -m serving.client --target localhost:8500 --image face.jpg --expression surprise --frames 12 \
      --out surprise.gif
  python -m serving.client --target localhost:8500 --status

Latencies per transport and payload: BENCHMARKS.md, "Serving". Exit status 0 on success, 1 when the
server answers an error or a file or value is wrong (one line on stderr), 2 for invalid flags.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pathlib
import sys
import time

import numpy as np

from serving.client import DEFAULT_MODEL_NAME, DEFAULT_TARGET, ServingClient, make_client
from serving.status import ServingError
from tf_ganimation.core import action_units, atomic, pixels


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m serving.client",
        description="Edit a face's expression with the served GANimation model (TF Serving or serving.local_server).")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--target", help=f"gRPC host:port (default {DEFAULT_TARGET} unless --rest).")
    where.add_argument("--rest", help="REST base URL, e.g. http://localhost:8501.")
    parser.add_argument("--model_name", default=DEFAULT_MODEL_NAME)
    parser.add_argument("--model_version", type=int, default=None, help="A version number (default: the latest).")
    parser.add_argument("--image", help="The face: a JPEG/PNG/... of any size, sent as it is.")
    parser.add_argument("--aus", help="Target AUs, e.g. AU12=1.0,AU06=0.8 (unnamed AUs are 0).")
    parser.add_argument("--expression", help="Target expression: a preset (happy, surprise, ...), a mix "
                        "(happy:0.5+surprise:0.5) or AUs as for --aus.")
    parser.add_argument("--out", help="Where to write the edited face (.png, .jpg) or, with --frames, the .gif.")
    parser.add_argument("--attention_out", help="Where to write the attention mask (PNG, white keeps the input).")
    parser.add_argument("--frames", type=int, default=0, help="Animate from --start_aus to the target in N frames.")
    parser.add_argument("--start_aus", default="neutral", help="Animation start: AUs or expression (neutral).")
    parser.add_argument("--frame_ms", type=int, default=80, help="GIF frame duration in ms (%(default)s).")
    parser.add_argument("--format", default="columnar", choices=["columnar", "row"], help="REST request form.")
    parser.add_argument("--timeout", type=float, default=30.0, help="Deadline per call in seconds (%(default)s).")
    parser.add_argument("--status", action="store_true", help="Print the model's versions and states.")
    parser.add_argument("--metadata", action="store_true", help="Print the model's signatures.")
    return parser, parser.parse_args(argv)


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no C++ start-up chatter
    parser, args = _parse_args(argv)
    if not (args.status or args.metadata) and not (args.image and args.out and (args.aus or args.expression)):
        parser.error("pass --image, --out and --aus or --expression (or --status / --metadata)")
    try:
        return _run(args)
    except ServingError as error:
        where = args.rest or args.target or DEFAULT_TARGET
        print(f"client: the server at {where} answered {error.code.name}: {error.message}", file=sys.stderr)
    except (FileNotFoundError, IsADirectoryError, ValueError) as error:
        print(f"client: {error}", file=sys.stderr)
    return 1


def _run(args) -> int:
    import tensorflow  # noqa: F401, PLC0415 (the protos need it: imported before the clock starts)
    from google.protobuf import json_format  # noqa: PLC0415

    target_aus = action_units.parse_expression(args.aus or args.expression) if (args.aus or args.expression) else None
    image_path = pathlib.Path(args.image) if args.image else None
    if image_path is not None and not image_path.is_file():
        raise FileNotFoundError(f"--image {image_path} not found")
    if args.frames and not str(args.out).lower().endswith(".gif"):
        raise ValueError(f"--frames writes a GIF: --out must end in .gif, got {args.out}")
    started = time.perf_counter()
    with make_client(args.target, args.rest, model_name=args.model_name, version=args.model_version,
                     timeout_s=args.timeout, request_format=args.format) as client:
        if args.status or args.metadata:
            proto = client.status() if args.status else client.metadata()
            print(json.dumps(json_format.MessageToDict(proto, preserving_proto_field_name=True,
                                                       always_print_fields_with_no_presence=True), indent=2))
            return 0
        if args.frames:
            _animate(client, image_path, action_units.parse_expression(args.start_aus), target_aus, args)
        else:
            _edit(client, image_path, target_aus, args)
    where = f"REST {args.rest}" if args.rest else f"gRPC {args.target or DEFAULT_TARGET}"
    named = ", ".join(f"{name}={value:.2f}" for name, value in zip(action_units.AU_NAMES, target_aus) if value)
    print(f"wrote {args.out} ({named or 'neutral'}) via {where} in {time.perf_counter() - started:.2f} s")
    return 0


def _edit(client: ServingClient, image_path: pathlib.Path, target_aus: np.ndarray, args) -> None:
    edited = client.edit_encoded([image_path.read_bytes()], target_aus[None])
    _write_image(pathlib.Path(args.out), edited["image_bytes"][0])
    if args.attention_out:
        _write_image(pathlib.Path(args.attention_out), edited["attention_bytes"][0])


def _animate(client: ServingClient, image_path: pathlib.Path, start_aus, end_aus, args) -> None:
    from PIL import Image  # noqa: PLC0415

    with Image.open(image_path) as photo:
        image = pixels.uint8_to_unit(np.asarray(photo.convert("RGB")))
    frames = client.animate(image, start_aus, end_aus, args.frames)
    pictures = [Image.fromarray(pixels.unit_to_uint8(frame)) for frame in frames]
    atomic.write_with(args.out, lambda temporary: pictures[0].save(
        temporary, format="GIF", save_all=True, append_images=pictures[1:], duration=args.frame_ms, loop=0))


def _write_image(path: pathlib.Path, png: bytes) -> None:
    """Writes a PNG answer to `path`: as it is for .png, converted to the extension's format otherwise."""
    if path.suffix.lower() == ".png":
        atomic.write_bytes(path, png)
        return
    from PIL import Image  # noqa: PLC0415

    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None:  # PIL's own words for an unknown extension
        raise ValueError(f"unknown file extension: {path.suffix}")
    with Image.open(io.BytesIO(png)) as picture:
        converted = picture.convert("RGB" if picture.mode != "L" else "L")
    atomic.write_with(path, lambda temporary: converted.save(temporary, format=image_format))
