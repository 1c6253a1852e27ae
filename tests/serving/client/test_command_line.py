"""serving/client/command_line.py: `python -m serving.client` against an in-process local server."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from serving.client import command_line
from serving.local_server import LocalServer
from tf_ganimation.export import saved_model

from conftest import PROJECT_ROOT, tiny_generator

SIZE = 32


def encoded(seed=0, size=(48, 40), format="PNG") -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, [size[1], size[0], 3], dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    generator = tiny_generator()
    base = tmp_path_factory.mktemp("models") / "ganimation"
    saved_model.export_generator(generator, base)
    server = LocalServer(base, grpc_port=0, rest_port=0).start()
    yield generator, server
    server.stop()


def test_command_line_edits_over_grpc_and_rest(served, tmp_path, capsys):
    _, server = served
    image = tmp_path / "face.jpg"
    image.write_bytes(encoded(3, size=(90, 70), format="JPEG"))
    for name, where in {"grpc": ["--target", server.grpc_target], "rest": ["--rest", server.rest_url]}.items():
        assert command_line.main([*where, "--image", str(image), "--aus", "AU12=1.0,AU06=0.8",
                                  "--out", str(tmp_path / f"{name}.png"),
                                  "--attention_out", str(tmp_path / f"{name}_attention.png")]) == 0
        assert f"wrote {tmp_path / f'{name}.png'} (AU06=0.80, AU12=1.00)" in capsys.readouterr().out
    assert (tmp_path / "grpc.png").read_bytes() == (tmp_path / "rest.png").read_bytes()
    with Image.open(tmp_path / "rest_attention.png") as mask:
        assert (mask.mode, mask.size) == ("L", (SIZE, SIZE))


def test_command_line_writes_other_formats_by_extension(served, tmp_path):
    _, server = served
    image = tmp_path / "face.png"
    image.write_bytes(encoded(5))
    out = tmp_path / "deep" / "smile.jpg"  # a folder that does not exist yet
    assert command_line.main(["--target", server.grpc_target, "--image", str(image), "--expression", "happy",
                              "--out", str(out), "--attention_out", str(tmp_path / "mask.bmp")]) == 0
    with Image.open(out) as picture:
        assert (picture.format, picture.mode, picture.size) == ("JPEG", "RGB", (SIZE, SIZE))
    with Image.open(tmp_path / "mask.bmp") as mask:
        assert (mask.format, mask.mode) == ("BMP", "L")
    assert sorted(path.name for path in out.parent.iterdir()) == ["smile.jpg"]  # no temporary file left


def test_command_line_animates_into_a_gif(served, tmp_path):
    _, server = served
    image = tmp_path / "face.png"
    image.write_bytes(encoded(4, size=(SIZE, SIZE)))
    assert command_line.main(["--target", server.grpc_target, "--image", str(image), "--expression", "happy",
                              "--frames", "5", "--out", str(tmp_path / "smile.gif")]) == 0
    with Image.open(tmp_path / "smile.gif") as gif:
        assert (gif.format, gif.size, gif.n_frames) == ("GIF", (SIZE, SIZE), 5)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["face.png", "smile.gif"]


def test_command_line_prints_status_and_metadata_as_json(served, capsys):
    _, server = served
    assert command_line.main(["--rest", server.rest_url, "--status"]) == 0
    assert json.loads(capsys.readouterr().out)["model_version_status"][0]["version"] == "1"
    assert command_line.main(["--target", server.grpc_target, "--metadata"]) == 0
    assert "serving_default" in json.loads(capsys.readouterr().out)["signature_def"]


def test_command_line_reports_errors_in_one_line(served, tmp_path, capsys):
    _, server = served
    assert command_line.main(["--target", server.grpc_target, "--image", str(tmp_path / "missing.jpg"),
                              "--expression", "happy", "--out", str(tmp_path / "out.png")]) == 1
    assert "missing.jpg not found" in capsys.readouterr().err
    image = tmp_path / "face.png"
    image.write_bytes(encoded())
    assert command_line.main(["--rest", server.rest_url, "--model_name", "stargan", "--image", str(image),
                              "--expression", "happy", "--out", str(tmp_path / "out.png")]) == 1
    assert "answered NOT_FOUND: Servable not found for request: Latest(stargan)" in capsys.readouterr().err
    assert command_line.main(["--target", server.grpc_target, "--image", str(image), "--aus", "AU99=1",
                              "--out", str(tmp_path / "out.png")]) == 1
    assert "unknown action unit 'AU99'" in capsys.readouterr().err
    assert command_line.main(["--target", server.grpc_target, "--image", str(image), "--expression", "happy",
                              "--frames", "3", "--out", str(tmp_path / "out.png")]) == 1
    assert "--frames writes a GIF: --out must end in .gif" in capsys.readouterr().err
    assert command_line.main(["--target", server.grpc_target, "--image", str(image), "--expression", "happy",
                              "--out", str(tmp_path / "out.xyz")]) == 1
    assert capsys.readouterr().err.strip() == "client: unknown file extension: .xyz"


@pytest.mark.parametrize("argv", [["--image", "face.jpg"], ["--target", "a:1", "--rest", "http://b:2", "--status"],
                                  ["--frames", "many"]])
def test_invalid_flags_exit_with_status_2(argv, capsys):
    with pytest.raises(SystemExit) as raised:
        command_line.main(argv)
    assert raised.value.code == 2
    assert "usage: python -m serving.client" in capsys.readouterr().err


def test_help_answers_before_tensorflow_loads():
    code = ("import sys\nfrom serving.client import command_line\ntry:\n    command_line.main(['--help'])\n"
            "except SystemExit as exit:\n    print(exit.code, 'tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert result.returncode == 0, result.stderr
    assert "--expression" in result.stdout and result.stdout.splitlines()[-1] == "0 False"
