r"""Clients of the served GANimation model, over gRPC or REST: a library and a command line.

Both clients have the same methods and raise the same `ServingError(code, message)`, against
tensorflow_model_server and against serving/local_server.py alike:

    with GrpcClient("localhost:8500") as client:          # or RestClient("http://localhost:8501")
        edited = client.edit_encoded([jpeg_bytes], aus)    # {"image_bytes": [png], "attention_bytes": [png]}
        outputs = client.edit(images, aus)                 # {"images", "attention", "color"}, float32 in [0, 1]
        frames = client.animate(image, start_aus, end_aus, num_frames=12)   # float32 [12, S, S, 3]
        client.image_size(), client.metadata(), client.status()

Images: the command line sends the face file as it is (any size, JPEG/PNG/...) through the `encoded`
signature, which decodes and resizes it on the server. `edit` and `animate` take float images and resize
them on the client when they are not the model's size (the size comes from GetModelMetadata).

gRPC: a deadline per call (timeout_s), messages up to 256 MiB each way (the 4 MiB default fails at batch
16 of 128-px float images: 7.3 MB of outputs), retries with exponential backoff on UNAVAILABLE (a server
that is starting or restarting). REST: row ("instances") or columnar ("inputs") requests, strings as b64,
the same retries on refused connections and 503.

Command line (a 128-px edit takes 0.25-0.5 s on 2 busy CPU cores, plus ~5 s to import TensorFlow):
  python -m serving.client --target localhost:8500 --image face.jpg --aus AU12=1.0,AU06=0.8 --out out.png
  python -m serving.client --rest http://localhost:8501 --image face.jpg --expression happy --out out.png
  python -m serving.client --target localhost:8500 --image face.jpg --expression surprise --frames 12 \
      --out surprise.gif
  python -m serving.client --target localhost:8500 --status
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import pathlib
import socket
import sys
import threading
import time
import urllib.parse
from typing import Iterable, Mapping, Sequence

import grpc
import numpy as np

from serving.status import CODE_OF_HTTP_STATUS, ServingError

DEFAULT_MODEL_NAME = "ganimation"
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024
ENCODED_SIGNATURE, ANIMATE_SIGNATURE, DEFAULT_SIGNATURE = "encoded", "animate", "serving_default"


class ServingClient:
    """What both clients share: the model's operations on top of `predict`, `metadata` and `status`.

    Args:
        model_name: the served model's name.
        version: a version number, or None for the latest.
        timeout_s: the deadline of each call, in seconds.
        retries: further attempts after an UNAVAILABLE answer.
        backoff_s: the wait before the first retry; doubled before each next one.
    """

    def __init__(self, model_name: str = DEFAULT_MODEL_NAME, version: int | None = None, timeout_s: float = 30.0,
                 retries: int = 3, backoff_s: float = 0.5):
        self.model_name = model_name
        self.version = version
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._signature_defs = None

    # === Transport, per client ===

    def predict(self, inputs: Mapping[str, np.ndarray], signature_name: str = DEFAULT_SIGNATURE,
                output_filter: Iterable[str] = ()) -> dict[str, np.ndarray]:
        """Runs a signature: numpy inputs (strings as bytes) -> numpy outputs (strings as object arrays)."""
        raise NotImplementedError

    def metadata(self):
        """The model's signature defs, a tensorflow_serving SignatureDefMap proto."""
        raise NotImplementedError

    def status(self):
        """The model's versions and their states, a GetModelStatusResponse proto."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _with_retries(self, call):
        for attempt in range(self.retries + 1):
            try:
                return call()
            except ServingError as error:
                if error.code != grpc.StatusCode.UNAVAILABLE or attempt == self.retries:
                    raise
                time.sleep(self.backoff_s * 2**attempt)

    # === The model's operations ===

    def signature_defs(self) -> Mapping:
        if self._signature_defs is None:
            self._signature_defs = self.metadata().signature_def
        return self._signature_defs

    def image_size(self) -> int:
        """The side of the square images the model takes, from the serving_default signature's shape."""
        return self.signature_defs()[DEFAULT_SIGNATURE].inputs["images"].tensor_shape.dim[1].size

    def edit(self, images: np.ndarray, aus: np.ndarray) -> dict[str, np.ndarray]:
        """float32 [N, H, W, 3] in [0, 1] (resized to the model's size if needed), aus [N, 17] in [0, 1]
        -> {"images", "color": float32 [N, S, S, 3] in [0, 1], "attention": float32 [N, S, S, 1]}."""
        images = self._model_size(images)
        return self.predict({"images": images, "aus": np.asarray(aus, np.float32)}, DEFAULT_SIGNATURE)

    def edit_encoded(self, image_bytes: Sequence[bytes], aus: np.ndarray) -> dict[str, list[bytes]]:
        """Encoded images of any size [N] and aus [N, 17] -> {"image_bytes", "attention_bytes"}: N PNGs each."""
        outputs = self.predict({"image_bytes": np.array(list(image_bytes), dtype=object),
                                "aus": np.asarray(aus, np.float32)}, ENCODED_SIGNATURE)
        return {name: list(value) for name, value in outputs.items()}

    def animate(self, image: np.ndarray, start_aus: np.ndarray, end_aus: np.ndarray, num_frames: int
                ) -> np.ndarray:
        """One image float32 [H, W, 3] in [0, 1], AUs [17] at the start and the end -> frames [F, S, S, 3]."""
        image = self._model_size(np.asarray(image, np.float32)[None])
        outputs = self.predict({"image": image, "start_aus": np.asarray(start_aus, np.float32)[None],
                                "end_aus": np.asarray(end_aus, np.float32)[None],
                                "num_frames": np.array([num_frames], np.int32)}, ANIMATE_SIGNATURE)
        return outputs["frames"][0, :int(outputs["num_frames"][0])]

    def _model_size(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, np.float32)
        size = self.image_size()
        if images.ndim == 4 and images.shape[1:3] != (size, size):
            import tensorflow as tf  # noqa: PLC0415 (only for the odd image)

            images = tf.image.resize(images, [size, size], antialias=True).numpy().clip(0.0, 1.0)
        return images


class GrpcClient(ServingClient):
    """TF Serving's PredictionService and ModelService over gRPC.

    Args:
        target: "host:port" of the gRPC API.
        max_message_bytes: the largest message sent or received.
        (the rest as ServingClient)
    """

    def __init__(self, target: str, model_name: str = DEFAULT_MODEL_NAME, version: int | None = None,
                 timeout_s: float = 30.0, retries: int = 3, backoff_s: float = 0.5,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES):
        super().__init__(model_name, version, timeout_s, retries, backoff_s)
        from tensorflow_serving.apis import (  # noqa: PLC0415
            model_service_pb2_grpc,
            prediction_service_pb2_grpc,
        )

        self.target = target
        self._channel = grpc.insecure_channel(target, options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes)])
        self._prediction = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def predict(self, inputs, signature_name=DEFAULT_SIGNATURE, output_filter=()):
        import tensorflow as tf  # noqa: PLC0415 (the protos import it anyway)
        from tensorflow_serving.apis import predict_pb2  # noqa: PLC0415

        request = predict_pb2.PredictRequest()
        self._fill_spec(request.model_spec, signature_name)
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        request.output_filter.extend(output_filter)
        response = self._call(self._prediction.Predict, request)
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def metadata(self):
        from tensorflow_serving.apis import get_model_metadata_pb2  # noqa: PLC0415

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._fill_spec(request.model_spec, "")
        response = self._call(self._prediction.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return signature_map

    def status(self):
        from tensorflow_serving.apis import get_model_status_pb2  # noqa: PLC0415

        request = get_model_status_pb2.GetModelStatusRequest()
        self._fill_spec(request.model_spec, "")
        return self._call(self._models.GetModelStatus, request)

    def close(self) -> None:
        self._channel.close()

    def _fill_spec(self, model_spec, signature_name: str) -> None:
        model_spec.name = self.model_name
        if self.version is not None:
            model_spec.version.value = self.version
        if signature_name:
            model_spec.signature_name = signature_name

    def _call(self, method, request):
        def once():
            try:
                return method(request, timeout=self.timeout_s)
            except grpc.RpcError as error:
                raise ServingError(error.code(), error.details() or str(error)) from None

        return self._with_retries(once)


class RestClient(ServingClient):
    """TF Serving's REST API.

    Args:
        url: "http://host:port" of the REST API.
        request_format: "columnar" ({"inputs": {...}}) or "row" ({"instances": [...]}).
        (the rest as ServingClient)
    """

    def __init__(self, url: str, model_name: str = DEFAULT_MODEL_NAME, version: int | None = None,
                 timeout_s: float = 30.0, retries: int = 3, backoff_s: float = 0.5,
                 request_format: str = "columnar"):
        super().__init__(model_name, version, timeout_s, retries, backoff_s)
        if request_format not in ("columnar", "row"):
            raise ValueError(f"request_format={request_format!r} is invalid: expected 'columnar' or 'row'")
        parsed = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"REST url {url!r} is invalid: expected http://host:port")
        self.url = f"http://{parsed.hostname}:{parsed.port or 80}"
        self._address = (parsed.hostname, parsed.port or 80)
        self.request_format = request_format
        self._local = threading.local()  # one keep-alive connection per thread

    @property
    def _model_path(self) -> str:
        path = f"/v1/models/{urllib.parse.quote(self.model_name, safe='')}"
        return path + (f"/versions/{self.version}" if self.version is not None else "")

    def predict(self, inputs, signature_name=DEFAULT_SIGNATURE, output_filter=()):
        values = {name: _json_value(value) for name, value in inputs.items()}
        if self.request_format == "row":
            batch = len(next(iter(values.values())))
            body = {"instances": [{name: value[index] for name, value in values.items()} for index in range(batch)]}
        else:
            body = {"inputs": values}
        if signature_name:
            body["signature_name"] = signature_name
        answer = self._request("POST", f"{self._model_path}:predict", json.dumps(body, separators=(",", ":")))
        if "predictions" in answer:
            outputs = _columns(answer["predictions"])
        else:
            outputs = answer["outputs"] if isinstance(answer["outputs"], dict) else {"": answer["outputs"]}
        signature = self.signature_defs()[signature_name or DEFAULT_SIGNATURE]
        if list(outputs) == [""]:  # a lone output comes without its name
            outputs = {next(iter(signature.outputs)): outputs[""]}
        wanted = list(output_filter) or sorted(outputs)
        return {name: _array(outputs[name], signature.outputs[name].dtype) for name in wanted}

    def metadata(self):
        from google.protobuf import json_format  # noqa: PLC0415
        from tensorflow_serving.apis import get_model_metadata_pb2  # noqa: PLC0415

        answer = self._request("GET", f"{self._model_path}/metadata")
        return json_format.ParseDict(answer["metadata"]["signature_def"], get_model_metadata_pb2.SignatureDefMap())

    def status(self):
        from google.protobuf import json_format  # noqa: PLC0415
        from tensorflow_serving.apis import get_model_status_pb2  # noqa: PLC0415

        answer = self._request("GET", self._model_path)
        return json_format.ParseDict(answer, get_model_status_pb2.GetModelStatusResponse())

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _request(self, method: str, path: str, body: str | None = None) -> dict:
        return self._with_retries(lambda: self._request_once(method, path, body))

    def _request_once(self, method: str, path: str, body: str | None) -> dict:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for reused in (True, False):
            connection = getattr(self._local, "connection", None)
            fresh = connection is None
            if fresh:
                connection = self._local.connection = http.client.HTTPConnection(*self._address,
                                                                                  timeout=self.timeout_s)
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                break
            except socket.timeout:
                self.close()
                raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                   f"no answer from {self.url} within {self.timeout_s} s") from None
            except (ConnectionError, http.client.HTTPException, OSError) as error:
                self.close()
                if reused and not fresh and isinstance(error, (http.client.RemoteDisconnected, BrokenPipeError,
                                                               ConnectionResetError)):
                    continue  # the server closed an idle keep-alive connection: once more on a new one
                raise ServingError(grpc.StatusCode.UNAVAILABLE, f"cannot reach {self.url}: {error}") from None
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        try:
            answer = json.loads(payload) if payload else {}
        except json.JSONDecodeError:
            answer = {"error": payload[:200].decode("utf-8", "replace")}
        if response.status != 200:
            code = CODE_OF_HTTP_STATUS.get(response.status, grpc.StatusCode.UNKNOWN)
            raise ServingError(code, answer.get("error", f"HTTP {response.status}") if isinstance(answer, dict)
                               else f"HTTP {response.status}")
        return answer


def _json_value(value) -> list:
    value = np.asarray(value) if not isinstance(value, np.ndarray) else value
    if value.dtype.kind in "OS":
        return _map_nested(value.tolist(), lambda item: {"b64": base64.b64encode(item).decode("ascii")})
    return value.tolist()


def _columns(predictions: list) -> dict:
    if predictions and isinstance(predictions[0], dict) and "b64" not in predictions[0]:
        return {name: [item[name] for item in predictions] for name in predictions[0]}
    return {"": predictions}


def _array(value, dtype_enum: int) -> np.ndarray:
    import tensorflow as tf  # noqa: PLC0415

    dtype = tf.as_dtype(dtype_enum)
    if dtype == tf.string:
        return np.array(_map_nested(value, lambda item: base64.b64decode(item["b64"]) if isinstance(item, dict)
                                    else item.encode("utf-8")), dtype=object)
    return np.asarray(value, dtype.as_numpy_dtype)


def _map_nested(value, function):
    if isinstance(value, list):
        return [_map_nested(item, function) for item in value]
    return function(value)


# === Command line ===

def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m serving.client",
        description="Edit a face's expression with the served GANimation model (TF Serving or serving.local_server).")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--target", help="gRPC host:port (default localhost:8500 unless --rest).")
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


def make_client(target: str | None = None, rest: str | None = None, **kwargs) -> ServingClient:
    """A RestClient when `rest` is given, else a GrpcClient for `target` (default localhost:8500)."""
    if rest:
        return RestClient(rest, **kwargs)
    kwargs.pop("request_format", None)
    return GrpcClient(target or "localhost:8500", **kwargs)


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no C++ start-up chatter
    parser, args = _parse_args(argv)
    if not (args.status or args.metadata) and not (args.image and args.out and (args.aus or args.expression)):
        parser.error("pass --image, --out and --aus or --expression (or --status / --metadata)")
    try:
        return _run(args)
    except ServingError as error:
        where = args.rest or args.target or "localhost:8500"
        print(f"client: the server at {where} answered {error.code.name}: {error.message}", file=sys.stderr)
    except (FileNotFoundError, IsADirectoryError, ValueError) as error:
        print(f"client: {error}", file=sys.stderr)
    return 1


def _run(args) -> int:
    import tensorflow  # noqa: F401, PLC0415 (the protos need it: imported before the clock starts)
    from google.protobuf import json_format  # noqa: PLC0415

    from tf_ganimation.core import action_units  # noqa: PLC0415 (numpy only)

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
    where = f"REST {args.rest}" if args.rest else f"gRPC {args.target or 'localhost:8500'}"
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
        image = np.asarray(photo.convert("RGB"), np.float32) / 255.0
    frames = client.animate(image, start_aus, end_aus, args.frames)
    pictures = [Image.fromarray(np.round(frame * 255).astype(np.uint8)) for frame in frames]
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pictures[0].save(out, save_all=True, append_images=pictures[1:], duration=args.frame_ms, loop=0)


def _write_image(path: pathlib.Path, png: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".png":
        path.write_bytes(png)
        return
    from PIL import Image  # noqa: PLC0415

    with Image.open(io.BytesIO(png)) as picture:
        picture.convert("RGB" if picture.mode != "L" else "L").save(path)


if __name__ == "__main__":
    sys.exit(main())
