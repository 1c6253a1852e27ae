"""Errors in TF Serving's form: a gRPC status code with a message, and the HTTP status REST answers with.

Both the local server and the clients raise `ServingError`, so a caller sees the same code and message
whether it talked gRPC or REST, to tensorflow_model_server or to serving/local_server.py.
"""

from __future__ import annotations

import re

import grpc

# TF Serving's mapping of status codes to HTTP statuses (tensorflow_serving/model_servers/http_server.cc).
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
# The way back, for REST clients (several codes share 400; the common one wins). 413 is the local
# server's answer to an oversized body, the REST twin of gRPC's RESOURCE_EXHAUSTED.
CODE_OF_HTTP_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED, 404: grpc.StatusCode.NOT_FOUND, 409: grpc.StatusCode.ABORTED,
    411: grpc.StatusCode.INVALID_ARGUMENT, 413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED, 499: grpc.StatusCode.CANCELLED, 500: grpc.StatusCode.INTERNAL,
    501: grpc.StatusCode.UNIMPLEMENTED, 503: grpc.StatusCode.UNAVAILABLE, 504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
_CODE_OF_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


class ServingError(Exception):
    """A failed request: `code` (grpc.StatusCode) and `message`, as TF Serving reports them."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)


def code_of_number(number: int) -> grpc.StatusCode:
    """A status code from its number (TensorFlow's error codes are gRPC's)."""
    return _CODE_OF_NUMBER.get(number, grpc.StatusCode.UNKNOWN)


def from_tf_error(error) -> ServingError:
    """A tf.errors.OpError raised while running a signature -> ServingError with the op's own message."""
    return ServingError(code_of_number(error.error_code), clean_tf_message(error.message))


def clean_tf_message(message: str) -> str:
    """Keeps what the failing op said: drops eager's preamble, node lists and function names."""
    lines = []
    for line in message.splitlines():
        stripped = line.strip()
        if (not stripped or stripped.startswith(("Graph execution error", "Detected at node", "<stack traces"))
                or stripped.startswith("[[")):
            continue
        lines.append(re.sub(r"\s*\[\[\{\{node .*$|\s*\[Op:[^\]]*\]", "", stripped))
    return " ".join(line for line in lines if line) or message.strip()
