"""TF Serving's REST API, from the client side: predict, metadata and status over HTTP/1.1 with JSON.

Requests are columnar ({"inputs": {...}}) or row ({"instances": [...]}), strings travel as b64
(serving/rest_json.py, the same conversion the local server uses), one keep-alive connection per
thread. Refused connections and 503 answers are UNAVAILABLE and retried as gRPC's are; other HTTP
statuses map back to TF Serving's status codes (status.CODE_OF_HTTP_STATUS).
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse

import grpc

from serving import rest_json
from serving.client.serving_client import DEFAULT_MODEL_NAME, DEFAULT_SIGNATURE, ServingClient
from serving.status import CODE_OF_HTTP_STATUS, ServingError


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
        import tensorflow as tf  # noqa: PLC0415 (the protos import it anyway)

        values = {name: rest_json.json_value(value, binary=True) for name, value in inputs.items()}
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
        return {name: rest_json.array(outputs[name], tf.as_dtype(signature.outputs[name].dtype),
                                      f"output '{name}' of the answer") for name in wanted}

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
            except TimeoutError:
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


def _columns(predictions: list) -> dict:
    """Row-form predictions (one object of outputs per example) -> {output name: its values}; a lone
    output comes without its name, under ""."""
    if predictions and isinstance(predictions[0], dict) and not rest_json.is_b64(predictions[0]):
        return {name: [item[name] for item in predictions] for name in predictions[0]}
    return {"": predictions}
