"""TF Serving's REST API over a ModelManager: its JSON forms, and a small threaded HTTP server.

    GET  /v1/models/<name>[/versions/<n>]                 model status (GetModelStatusResponse as JSON)
    GET  /v1/models/<name>[/versions/<n>]/metadata        model metadata (signature defs)
    POST /v1/models/<name>[/versions/<n>]:predict         {"signature_name"?, "instances": [...]} (row form)
                                                          or {"signature_name"?, "inputs": {...}} (columnar form)

Row answers are {"predictions": [...]}, one entry per example (an object of outputs when the signature
has several); columnar answers are {"outputs": {...}}. Binary strings travel as {"b64": "..."}: any
string input may be sent so, and string outputs whose name ends in `_bytes` are answered so (the
conversions are serving/rest_json.py's). Errors are {"error": "<message>"} with TF Serving's HTTP status
for the status code (400, 404, 413, 501, ...).

Notes: numbers are parsed with the C json module and converted with one numpy call per input, and
base64 strings are decoded by binascii, so a request whose images travel as b64 costs little more than
its gRPC twin; float images as JSON numbers cost ~10 bytes and ~0.3 us per value each way.
"""

from __future__ import annotations

import http.server
import json
import logging
import re
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format

from serving import grpc_service, rest_json
from serving.manager import ModelManager
from serving.status import ServingError

logger = logging.getLogger(__name__)

_PREDICT_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?:(classify|regress|predict)", re.IGNORECASE)
_MODEL_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:/versions/(\d+)|/labels/([^/:]+))?(?:/(metadata))?", re.IGNORECASE)
ROW, COLUMNAR = "row", "columnar"


# === JSON <-> tensors ===

def parse_predict_body(body: bytes) -> dict:
    """The JSON object of a predict request; INVALID_ARGUMENT for anything else."""
    if not body:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "JSON Parse error: The document is empty")
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"JSON Parse error: {error}") from None
    if not isinstance(document, dict):
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "JSON Value: the request body is not an object")
    signature_name = document.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "'signature_name' key must be a string value")
    return document


def request_inputs(document: Mapping[str, Any], signature_inputs: Mapping[str, Any]
                   ) -> tuple[dict[str, np.ndarray], str]:
    """The inputs of a parsed predict request as numpy arrays, and its form (ROW or COLUMNAR).

    Args:
        document: the request's JSON object.
        signature_inputs: the signature def's inputs (name -> TensorInfo), which give each input's dtype.
    """
    dtypes = {name: tf.as_dtype(info.dtype) for name, info in signature_inputs.items()}
    if ("instances" in document) == ("inputs" in document):
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           "Missing 'inputs' or 'instances' key" if "instances" not in document else
                           "Not formatted correctly: expecting only one of 'inputs' or 'instances' keys")
    if "instances" in document:
        return _row_inputs(document["instances"], dtypes), ROW
    return _columnar_inputs(document["inputs"], dtypes), COLUMNAR


def _row_inputs(instances, dtypes: Mapping[str, tf.DType]) -> dict[str, np.ndarray]:
    if not isinstance(instances, list):
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Expecting 'instances' to be a list/array")
    if not instances:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "No values in 'instances' array")
    names = sorted(dtypes)
    named = isinstance(instances[0], dict) and not rest_json.is_b64(instances[0])
    if not named:
        if len(names) > 1:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               "instances is a plain list, but expecting list of objects as multiple input "
                               f"tensors required ({', '.join(names)})")
        return {names[0]: rest_json.array(instances, dtypes[names[0]], f"'{names[0]}' of 'instances'")}
    columns = {name: [] for name in names}
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict) or rest_json.is_b64(instance) or sorted(instance) != names:
            keys = sorted(instance) if isinstance(instance, dict) else type(instance).__name__
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"Failed to process element: {index} of 'instances' list: its keys {keys} must be "
                               f"equal to: {', '.join(names)}")
        for name in names:
            columns[name].append(instance[name])
    return {name: rest_json.array(values, dtypes[name], f"'{name}' of 'instances'")
            for name, values in columns.items()}


def _columnar_inputs(inputs, dtypes: Mapping[str, tf.DType]) -> dict[str, np.ndarray]:
    names = sorted(dtypes)
    if not isinstance(inputs, dict) or rest_json.is_b64(inputs):
        if len(names) > 1:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               "inputs is a plain value/list, but expecting an object as multiple input tensors "
                               f"required ({', '.join(names)})")
        return {names[0]: rest_json.array(inputs, dtypes[names[0]], f"'{names[0]}' of 'inputs'")}
    for name in names:
        if name not in inputs:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Missing named input: {name} in 'inputs' object.")
    # Like TF Serving, keys the signature does not name are ignored.
    return {name: rest_json.array(inputs[name], dtypes[name], f"'{name}' of 'inputs'") for name in names}


def predict_response(outputs: Mapping[str, np.ndarray], form: str) -> dict:
    """{"predictions": [...]} (ROW) or {"outputs": ...} (COLUMNAR), b64 for string outputs named *_bytes."""
    values = {name: rest_json.json_value(value, binary=name.endswith("_bytes"))
              for name, value in outputs.items()}
    if form == COLUMNAR:
        return {"outputs": values if len(values) > 1 else next(iter(values.values()))}
    batch_sizes = {name: value.shape[0] if value.ndim else None for name, value in outputs.items()}
    if None in batch_sizes.values() or len(set(batch_sizes.values())) > 1:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"outputs have inconsistent batch sizes {batch_sizes}: ask in the columnar form "
                           "(\"inputs\") instead")
    batch = next(iter(batch_sizes.values()))
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    return {"predictions": [{name: value[index] for name, value in values.items()} for index in range(batch)]}


# === HTTP ===

class RestServer(http.server.ThreadingHTTPServer):
    """ThreadingHTTPServer with the manager, a request-size bound and a bound on open connections."""

    daemon_threads = True
    allow_reuse_address = True  # rebind at once after a restart; Linux still refuses a second listener

    def __init__(self, address, manager: ModelManager, max_request_bytes: int, max_connections: int = 64):
        self.manager = manager
        self.max_request_bytes = max_request_bytes
        self._connections = threading.BoundedSemaphore(max_connections)
        super().__init__(address, RestHandler)

    def process_request(self, request, client_address):
        self._connections.acquire()  # beyond max_connections, new connections wait in the listen backlog
        try:
            super().process_request(request, client_address)
        except Exception:
            self._connections.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()


class RestHandler(http.server.BaseHTTPRequestHandler):
    """GET status/metadata and POST :predict, answered as TF Serving's REST API does."""

    protocol_version = "HTTP/1.1"
    server: RestServer

    def do_GET(self):
        self._answer(self._get)

    def do_POST(self):
        self._answer(self._post)

    def handle_expect_100(self):
        # curl asks before sending bodies over 1 KB: refuse an oversized one before it is sent.
        if self._content_length() > self.server.max_request_bytes:
            self._too_large(body_sent=False)
            return False
        return super().handle_expect_100()

    def _get(self) -> dict:
        match = _MODEL_PATH.fullmatch(self.path.split("?")[0])
        if not match:
            raise _malformed(self.command, self.path)
        name, version, label, metadata = match.groups()
        name = urllib.parse.unquote(name or "")
        if not name:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Missing model name in request.")
        manager = self.server.manager
        if metadata:
            servable = manager.servable(name, int(version) if version else None, label or "")
            response = grpc_service.metadata_response(servable)
            signature_map = grpc_service.get_model_metadata_pb2.SignatureDefMap()
            response.metadata[grpc_service.SIGNATURE_DEF_FIELD].Unpack(signature_map)
            return {"model_spec": _proto_json(response.model_spec),
                    "metadata": {grpc_service.SIGNATURE_DEF_FIELD: _proto_json(signature_map)}}
        if label:
            manager.servable(name, None, label)  # raises: labels are not configured
        spec = grpc_service.model_pb2.ModelSpec(name=name)
        if version:
            spec.version.value = int(version)
        return json_format.MessageToDict(grpc_service.status_response(manager, spec),
                                         always_print_fields_with_no_presence=True)

    def _post(self) -> dict:
        match = _PREDICT_PATH.fullmatch(self.path.split("?")[0])
        if not match:
            raise _malformed(self.command, self.path)
        name, version, label, method = match.groups()
        name = urllib.parse.unquote(name)
        if method.lower() != "predict":
            raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                               f"{method} is not supported: this model has predict signatures only")
        body = self._read_body()
        document = parse_predict_body(body)
        manager = self.server.manager
        servable = manager.servable(name, int(version) if version else None, label or "")
        signature_name = document.get("signature_name", "") or "serving_default"
        inputs, form = request_inputs(document, servable.signature_def(signature_name).inputs)
        outputs = manager.run(servable, signature_name, inputs)
        return predict_response(outputs, form)

    def _content_length(self) -> int:
        try:
            return int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return 0

    def _read_body(self) -> bytes:
        if "Content-Length" not in self.headers:
            self.close_connection = True
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               "a Content-Length header is required (chunked bodies are not supported)")
        length = self._content_length()
        if length > self.server.max_request_bytes:
            raise _TooLarge()
        return self.rfile.read(length)

    def _answer(self, handler) -> None:
        try:
            payload, status = handler(), 200
        except _TooLarge:
            self._too_large()
            return
        except ServingError as error:
            payload, status = {"error": error.message}, error.http_status
        except Exception as error:  # a bug, not a bad request: log it, answer 500
            logger.exception("REST request %s %s failed", self.command, self.path)
            payload, status = {"error": f"{type(error).__name__}: {error}"}, 500
        self._send(status, json.dumps(payload, separators=(",", ":")).encode("utf-8"))

    def _too_large(self, body_sent: bool = True) -> None:
        # The body is not kept. Closing with unread data would reset the connection before the client reads
        # the answer, so a body on its way is read and dropped, up to 4x the limit (beyond that, reset).
        self.close_connection = True
        length = self._content_length()
        if body_sent and length <= 4 * self.server.max_request_bytes:
            while length > 0:
                chunk = self.rfile.read(min(length, 1 << 20))
                if not chunk:
                    break
                length -= len(chunk)
        message = (f"request body of {self._content_length()} bytes is larger than the server's limit of "
                   f"{self.server.max_request_bytes} bytes (--max_request_bytes)")
        self._send(413, json.dumps({"error": message}).encode("utf-8"))

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        logger.debug("%s %s", self.address_string(), format % args)


class _TooLarge(Exception):
    pass


def _malformed(method: str, path: str) -> ServingError:
    if not path.lower().startswith("/v1/"):
        return ServingError(grpc.StatusCode.NOT_FOUND, f"no such resource: {method} {path} (the API is under /v1/)")
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Malformed request: {method} {path}")


def _proto_json(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def make_rest_server(manager: ModelManager, host: str, port: int, max_request_bytes: int) -> RestServer:
    """A REST server bound to host:port (0 picks a free port); run it with serve_forever()."""
    return RestServer((host, port), manager, max_request_bytes)
