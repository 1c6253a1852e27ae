r"""A development stand-in for tensorflow_model_server: TF Serving's gRPC and REST APIs over our SavedModel.

For development and tests only. Production runs the real tensorflow_model_server (Docker image
tensorflow/serving) with serving/models.config and serving/batching_parameters.txt; see
serving/docker-compose.yml. The real server cannot be installed from the package registries (it is on neither PyPI
nor Debian), so this one implements the part of its API our clients use, with the official protos:

- gRPC (default port 8500): PredictionService.Predict and GetModelMetadata, ModelService.GetModelStatus.
- REST (default port 8501): GET /v1/models/<name>[/versions/<n>][/metadata],
  POST /v1/models/<name>[/versions/<n>]:predict in row ("instances") and columnar ("inputs") forms, b64.
- Errors in TF Serving's form: gRPC status codes; REST {"error": ...} with the matching HTTP status.
- The version policy `latest 1`: the highest version folder is served; a new one is picked up by
  polling, loaded and warmed up (assets.extra/tf_serving_warmup_requests) before requests switch to it.
- Binds 127.0.0.1 unless told otherwise; bounds request size and the number of concurrent model runs.

Example (ready in ~12 s for the paper-size model: TensorFlow import, load, warmup; 2 CPU cores):
  python -m serving.local_server --model_base_path models/ganimation --port 8500 --rest_api_port 8501
Prints one "serving ..." line when ready; stops on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

DEFAULT_MODEL_NAME = "ganimation"
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024


class LocalServer:
    """The manager, the gRPC server and the REST server of one model, started and stopped together.

    Args:
        model_base_path: the folder of `<version>/` SavedModels.
        model_name: the name requests use.
        host: the address both servers bind (127.0.0.1: this machine only).
        grpc_port: the gRPC port; 0 picks a free one.
        rest_port: the REST port; 0 picks a free one, None disables REST.
        max_request_bytes: the largest request body accepted (gRPC message or HTTP body).
        max_concurrent_requests: model runs at a time; further requests wait.
        poll_interval_s: seconds between scans of model_base_path for new versions.
        warmup: replay each version's warmup requests before serving it.
    """

    def __init__(self, model_base_path: os.PathLike, model_name: str = DEFAULT_MODEL_NAME, host: str = "127.0.0.1",
                 grpc_port: int = 8500, rest_port: int | None = 8501,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, max_concurrent_requests: int = 4,
                 poll_interval_s: float = 1.0, warmup: bool = True):
        # Imported here so that `--help` and argument errors answer before TensorFlow loads (~3 s).
        from serving import grpc_service, rest  # noqa: PLC0415
        from serving.manager import ModelManager  # noqa: PLC0415

        if max_request_bytes < 1:
            raise ValueError(f"max_request_bytes={max_request_bytes} is invalid: expected a number of bytes >= 1")
        self.host = host
        self.manager = ModelManager(model_name, model_base_path, poll_interval_s, max_concurrent_requests, warmup)
        self._grpc_server, self.grpc_port = grpc_service.make_grpc_server(
            self.manager, host, grpc_port, max_request_bytes, max_workers=max(8, 2 * max_concurrent_requests))
        self._rest_server = None if rest_port is None else rest.make_rest_server(
            self.manager, host, rest_port, max_request_bytes)
        self.rest_port = None if self._rest_server is None else self._rest_server.server_address[1]
        self._rest_thread: threading.Thread | None = None

    @property
    def grpc_target(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def rest_url(self) -> str | None:
        return None if self.rest_port is None else f"http://{self.host}:{self.rest_port}"

    def start(self) -> LocalServer:
        """Loads the highest version (if any), then starts answering on both ports."""
        self.manager.start()
        self._grpc_server.start()
        if self._rest_server is not None:
            self._rest_thread = threading.Thread(target=self._rest_server.serve_forever, name="rest", daemon=True)
            self._rest_thread.start()
        return self

    def stop(self, grace_s: float = 1.0) -> None:
        self._grpc_server.stop(grace_s).wait()
        if self._rest_server is not None:
            self._rest_server.shutdown()
            self._rest_server.server_close()
        self.manager.stop()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m serving.local_server",
        description="TF Serving's gRPC and REST APIs over a SavedModel base path, for development and tests. "
                    "Production runs tensorflow_model_server with the configs in serving/.")
    parser.add_argument("--model_base_path", required=True, help="Folder of <version>/ SavedModels.")
    parser.add_argument("--model_name", default=DEFAULT_MODEL_NAME, help="Name requests use (%(default)s).")
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (%(default)s).")
    parser.add_argument("--rest_api_port", type=int, default=8501, help="REST port (%(default)s); 0 disables REST.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="Address to bind (%(default)s: this machine only; 0.0.0.0 for every interface).")
    parser.add_argument("--max_request_bytes", type=int, default=DEFAULT_MAX_REQUEST_BYTES,
                        help="Largest request accepted, gRPC message or HTTP body (%(default)s).")
    parser.add_argument("--max_concurrent_requests", type=int, default=4,
                        help="Model runs at a time; further requests wait (%(default)s).")
    parser.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0,
                        help="Seconds between scans of the base path for new versions (%(default)s).")
    parser.add_argument("--no_warmup", action="store_true", help="Do not replay the warmup requests on load.")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no C++ start-up chatter
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        server = LocalServer(args.model_base_path, args.model_name, args.host, args.port,
                             args.rest_api_port or None, args.max_request_bytes, args.max_concurrent_requests,
                             args.file_system_poll_wait_seconds, not args.no_warmup)
    except (FileNotFoundError, ValueError, OSError, RuntimeError) as error:
        print(f"local_server: {error}", file=sys.stderr)
        return 1
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    server.start()
    version = server.manager.current_version
    where = f"gRPC at {server.grpc_target}" + (f", REST at {server.rest_url}" if server.rest_url else "")
    state = f"version {version}" if version is not None else f"no version yet (watching {args.model_base_path})"
    print(f"serving {args.model_name} {state}: {where}", flush=True)
    stopped.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
