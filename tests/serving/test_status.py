"""serving/status.py: TF Serving's status codes, their HTTP statuses both ways, and TensorFlow's messages."""

import grpc
import pytest
import tensorflow as tf

from serving import status
from serving.status import CODE_OF_HTTP_STATUS, HTTP_STATUS, ServingError


def test_every_status_code_has_tf_servings_http_status():
    assert set(HTTP_STATUS) == set(grpc.StatusCode)
    assert {code.name: HTTP_STATUS[code] for code in (
        grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL)} == {
        "OK": 200, "INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "RESOURCE_EXHAUSTED": 429,
        "FAILED_PRECONDITION": 400, "UNIMPLEMENTED": 501, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504,
        "INTERNAL": 500}


@pytest.mark.parametrize("http_status", sorted(set(CODE_OF_HTTP_STATUS) - {411, 413}))
def test_an_http_status_maps_back_to_a_code_that_maps_to_it(http_status):
    assert HTTP_STATUS[CODE_OF_HTTP_STATUS[http_status]] == http_status


def test_the_statuses_that_share_a_code_map_back_to_the_common_one():
    # 413 is the local server's answer to an oversized body: gRPC answers that RESOURCE_EXHAUSTED.
    assert CODE_OF_HTTP_STATUS[413] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert CODE_OF_HTTP_STATUS[411] == CODE_OF_HTTP_STATUS[400] == grpc.StatusCode.INVALID_ARGUMENT


def test_a_serving_error_carries_its_code_message_and_http_status():
    error = ServingError(grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(stargan)")
    assert (error.code, error.message, error.http_status) == (
        grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(stargan)", 404)
    assert str(error) == "NOT_FOUND: Servable not found for request: Latest(stargan)"
    assert ServingError(grpc.StatusCode.ABORTED, "").http_status == 409


def test_code_of_number_reads_tensorflows_error_codes():
    assert status.code_of_number(3) == grpc.StatusCode.INVALID_ARGUMENT
    assert status.code_of_number(5) == grpc.StatusCode.NOT_FOUND
    assert status.code_of_number(tf.errors.RESOURCE_EXHAUSTED) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status.code_of_number(999) == grpc.StatusCode.UNKNOWN


EAGER_MESSAGE = ("Graph execution error:\n\nDetected at node VerifyFinite/CheckNumerics defined at (most recent call "
                 "last):\n<stack traces unavailable>\naus must be finite : Tensor had NaN values\n"
                 "\t [[{{node VerifyFinite/CheckNumerics}}]] [Op:__inference_signature_wrapper_1234]")


def test_clean_tf_message_keeps_only_what_the_op_said():
    assert status.clean_tf_message(EAGER_MESSAGE) == "aus must be finite : Tensor had NaN values"
    assert status.clean_tf_message("Input to reshape is a tensor with 3 values [Op:Reshape]") == \
        "Input to reshape is a tensor with 3 values"
    assert status.clean_tf_message("first line\n  second line [[{{node a/b}}]]") == "first line second line"


def test_clean_tf_message_falls_back_to_the_whole_message():
    assert status.clean_tf_message("  [[{{node only}}]]  ") == "[[{{node only}}]]"


def test_from_tf_error_keeps_the_code_and_the_ops_words():
    error = status.from_tf_error(tf.errors.InvalidArgumentError(None, None, EAGER_MESSAGE))
    assert (error.code, error.message) == (grpc.StatusCode.INVALID_ARGUMENT,
                                           "aus must be finite : Tensor had NaN values")
    assert status.from_tf_error(tf.errors.ResourceExhaustedError(None, None, "OOM")).code == \
        grpc.StatusCode.RESOURCE_EXHAUSTED
