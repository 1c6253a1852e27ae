"""serving/client/__init__.py: the client library's public names and make_client.

The clients themselves are tested in tests/serving/client/, one file per module.
"""

import os
import subprocess
import sys

from serving import client
from serving.client import GrpcClient, RestClient, make_client

from conftest import PROJECT_ROOT


def test_make_client_picks_the_transport():
    rest = make_client("ignored:1", "http://127.0.0.1:8501", model_name="stargan", request_format="row")
    assert isinstance(rest, RestClient) and (rest.url, rest.model_name, rest.request_format) == (
        "http://127.0.0.1:8501", "stargan", "row")
    with make_client("127.0.0.1:8500", request_format="row", version=3, timeout_s=5.0) as grpc_client:
        assert isinstance(grpc_client, GrpcClient)  # request_format is REST's: dropped
        assert (grpc_client.target, grpc_client.version, grpc_client.timeout_s) == ("127.0.0.1:8500", 3, 5.0)
    with make_client() as default:
        assert isinstance(default, GrpcClient) and default.target == client.DEFAULT_TARGET == "localhost:8500"


def test_the_package_exports_the_library():
    assert set(client.__all__) <= set(dir(client))
    assert {"ServingClient", "GrpcClient", "RestClient", "ServingError", "make_client"} <= set(client.__all__)
    assert (client.DEFAULT_MODEL_NAME, client.DEFAULT_SIGNATURE) == ("ganimation", "serving_default")


def test_the_library_does_not_import_the_command_line_or_tensorflow():
    code = ("import sys, serving.client; "
            "print('serving.client.command_line' in sys.modules, 'tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False False"
