r"""Benchmarks Predict through serving/local_server.py: gRPC against REST (float JSON and b64), batch 1 and 8.

Exports a generator with random weights (the paper's size by default: 8.5 M weights, 128 px), starts
`python -m serving.local_server` in a subprocess (its own process, as a real server would be), and times
sequential requests from one client (serving/client/): latency p50 and p99 end to end, client encoding
and decoding included, and images per second. Not a test: numbers go into BENCHMARKS.md.

Example (~10 min on 2 busy CPU cores):
  python scripts/benchmarks/serving_latency.py --requests 10
Prints one table row per (transport, payload, batch).
"""

from __future__ import annotations

import io
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import flags, logging

from tf_ganimation import cli  # before anything loads TensorFlow: cli readies its start (cli.py)

# isort: split
from serving.client import GrpcClient, RestClient
from tf_ganimation import flags as training_flags
from tf_ganimation.core import action_units
from tf_ganimation.core.config import ModelConfig
from tf_ganimation.export import saved_model
from tf_ganimation.model import networks

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[2]

flags.DEFINE_list("batch_sizes", ["1", "8"], "Batch sizes to time.")
flags.DEFINE_integer("requests", 30, "Timed requests per row (after 3 untimed ones).")
flags.DEFINE_string("photo", str(PROJECT_ROOT.parent / "shared" / "data" / "photos" / "astronaut.png"),
                    "A photo for the encoded payloads (a gradient if missing).")
FLAGS = training_flags.FLAGS


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _face_png(size: int) -> tuple[np.ndarray, bytes]:
    from PIL import Image  # noqa: PLC0415

    if os.path.isfile(FLAGS.photo):
        with Image.open(FLAGS.photo) as photo:
            side = min(photo.size)
            picture = photo.convert("RGB").crop((0, 0, side, side)).resize((size, size), Image.BILINEAR)
    else:
        ramp = np.linspace(0, 255, size, dtype=np.uint8)
        picture = Image.fromarray(np.stack(np.meshgrid(ramp, ramp) + [ramp[None].repeat(size, 0)], -1))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return np.asarray(picture, np.float32) / 255.0, buffer.getvalue()


def _time(call, requests: int) -> np.ndarray:
    for _ in range(3):
        call()
    latencies = []
    for _ in range(requests):
        started = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - started)
    return np.array(latencies)


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    size = FLAGS.image_size
    config = ModelConfig(image_size=size, generator_filters=FLAGS.generator_filters,
                         generator_residual_blocks=FLAGS.generator_residual_blocks, critic_layers=2)
    generator = networks.build_generator(config)
    workdir = tempfile.mkdtemp(prefix="benchmark_serving_")
    version = saved_model.export_generator(generator, pathlib.Path(workdir) / "ganimation", model_config=config)
    grpc_port, rest_port = _free_port(), _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "serving.local_server", "--model_base_path", str(version.parent),
         "--port", str(grpc_port), "--rest_api_port", str(rest_port)],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        print(server.stdout.readline().strip())
        image, png = _face_png(size)
        clients = {"gRPC": GrpcClient(f"127.0.0.1:{grpc_port}", timeout_s=300),
                   "REST columnar": RestClient(f"http://127.0.0.1:{rest_port}", timeout_s=300),
                   "REST row": RestClient(f"http://127.0.0.1:{rest_port}", timeout_s=300, request_format="row")}
        print(f"generator: {generator.count_params():,} weights, {size} px; {FLAGS.requests} sequential requests "
              f"per row; {os.cpu_count()} CPU cores")
        print("| transport | payload | batch | p50 ms | p99 ms | images/s |")
        print("|---|---|---|---|---|---|")
        for batch in [int(value) for value in FLAGS.batch_sizes]:
            images = np.repeat(image[None], batch, axis=0)
            aus = np.repeat(action_units.preset("happy")[None], batch, axis=0)
            for name, client in clients.items():
                payloads = {"float32 tensors" if name == "gRPC" else "float JSON":
                                lambda c=client, x=images, a=aus: c.edit(x, a),
                            "PNG bytes" if name == "gRPC" else "PNG b64":
                                lambda c=client, n=batch, a=aus: c.edit_encoded([png] * n, a)}
                for payload, call in payloads.items():
                    latencies = _time(call, FLAGS.requests)
                    print(f"| {name} | {payload} | {batch} | {1000 * np.percentile(latencies, 50):.0f} | "
                          f"{1000 * np.percentile(latencies, 99):.0f} | {batch / latencies.mean():.1f} |", flush=True)
        for client in clients.values():
            client.close()
    finally:
        server.terminate()
        server.wait(timeout=60)
    return 0


if __name__ == "__main__":
    cli.run(main)
