"""serving/manager.py: the model lifecycle, driven poll by poll (no server, no sockets)."""

import shutil
import threading
import time

import grpc
import numpy as np
import pytest

from serving import manager as manager_lib
from serving.manager import ModelManager
from serving.status import ServingError
from tf_ganimation.export import saved_model
from tf_ganimation.model import edit_model

from conftest import random_inputs, tiny_generator

SIZE = 32



def states(manager):
    return [(status.version, status.state) for status in manager.status("ganimation")]


def wait_for(condition, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def first_version(tmp_path_factory):
    """A version folder of the tiny generator, to copy into each test's base path."""
    generator = tiny_generator(seed=1)
    return generator, saved_model.export_generator(generator, tmp_path_factory.mktemp("models") / "ganimation")


@pytest.fixture
def base(first_version, tmp_path):
    base = tmp_path / "ganimation"
    shutil.copytree(first_version[1], base / "1")
    return base


def test_the_first_poll_loads_the_highest_version(first_version, base):
    manager = ModelManager("ganimation", base, warmup=False)
    assert manager.current_version is None
    assert manager.poll(initial=True) and manager.current_version == 1
    assert states(manager) == [(1, "AVAILABLE")]
    images, aus = random_inputs(1)
    servable = manager.servable("ganimation")
    assert manager.servable("ganimation", 1) is servable
    np.testing.assert_allclose(manager.run(servable, "serving_default", {"images": images, "aus": aus})["images"],
                               edit_model.edit_images(first_version[0], images, aus)["images"].numpy(), atol=1e-5)


def test_a_new_version_is_loaded_once_its_files_stop_changing(base):
    manager = ModelManager("ganimation", base, warmup=False)
    manager.poll(initial=True)
    saved_model.export_generator(tiny_generator(seed=2), base)  # version 2
    assert not manager.poll() and manager.current_version == 1  # first seen: maybe still being written
    assert manager.poll() and manager.current_version == 2
    assert states(manager) == [(2, "AVAILABLE"), (1, "END")]
    assert not manager.poll()  # nothing new
    with pytest.raises(ServingError) as raised:
        manager.servable("ganimation", 1)
    assert (raised.value.code, raised.value.message) == (grpc.StatusCode.NOT_FOUND,
                                                          "Servable not found for request: Specific(ganimation, 1)")


def test_a_broken_version_is_reported_skipped_and_retried_when_its_files_change(base, monkeypatch):
    manager = ModelManager("ganimation", base, warmup=False)
    manager.poll(initial=True)
    loads = []
    real_servable = manager_lib.Servable
    monkeypatch.setattr(manager_lib, "Servable", lambda *args: (loads.append(args[1]), real_servable(*args))[1])
    broken = base / "2"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    assert not manager.poll() and not manager.poll()
    assert loads == [2] and manager.current_version == 1
    (failed,) = manager.status("ganimation", 2)
    assert failed.state == "END" and failed.error_message.startswith(f"failed to load {broken}")
    assert failed.error_code != grpc.StatusCode.OK
    assert not manager.poll() and loads == [2]  # the same files are not tried again
    assert manager.servable("ganimation").version == 1  # and version 1 keeps serving
    shutil.rmtree(broken)
    shutil.copytree(base / "1", broken)  # now a real SavedModel
    assert not manager.poll()
    assert manager.poll() and manager.current_version == 2 and loads == [2, 2]


def test_the_poller_thread_picks_up_a_version_and_stops(base):
    manager = ModelManager("ganimation", base, poll_interval_s=0.05, warmup=False).start()
    try:
        assert manager.current_version == 1  # loaded by start(), before the first poll
        shutil.copytree(base / "1", base / "3")
        assert wait_for(lambda: manager.current_version == 3)
    finally:
        manager.stop()
    assert not manager._thread.is_alive()


def test_warmup_replays_the_requests_before_serving(base, caplog):
    manager = ModelManager("ganimation", base)
    with caplog.at_level("INFO", logger=manager_lib.__name__):
        assert manager.poll(initial=True)
    assert f"serving ganimation version 1 ({len(saved_model.SIGNATURES)} warmup requests replayed)" in caplog.text


def test_lookups_answer_in_tf_servings_words(base):
    manager = ModelManager("ganimation", base, warmup=False)
    with pytest.raises(ServingError, match=r"Servable not found for request: Latest\(ganimation\)"):
        manager.servable("ganimation")  # nothing loaded yet
    with pytest.raises(ServingError, match="Could not find any versions of model ganimation"):
        manager.status("ganimation")
    manager.poll(initial=True)
    cases = {("stargan", None, ""): (grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(stargan)"),
             ("ganimation", 9, ""): (grpc.StatusCode.NOT_FOUND,
                                     "Servable not found for request: Specific(ganimation, 9)"),
             ("ganimation", None, "stable"): (grpc.StatusCode.INVALID_ARGUMENT, "version label 'stable' is not "
                                              "configured")}
    for (name, version, label), (code, message) in cases.items():
        with pytest.raises(ServingError) as raised:
            manager.servable(name, version, label)
        assert raised.value.code == code and raised.value.message.startswith(message)
    with pytest.raises(ServingError, match="Could not find version 9 of model ganimation"):
        manager.status("ganimation", 9)
    with pytest.raises(ServingError, match="Could not find any versions of model stargan"):
        manager.status("stargan")


class SlowServable:
    """Records how many runs overlap."""

    def __init__(self):
        self.running, self.most, self._lock = 0, 0, threading.Lock()

    def run(self, signature_name, inputs, output_filter):
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.1)
        with self._lock:
            self.running -= 1
        return {}


@pytest.mark.parametrize("slots", [1, 2])
def test_runs_are_bounded_by_max_concurrent_requests(base, slots):
    manager, servable = ModelManager("ganimation", base, max_concurrent_requests=slots), SlowServable()
    threads = [threading.Thread(target=manager.run, args=(servable, "serving_default", {})) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert servable.most == slots


def test_invalid_arguments_are_refused_with_the_value(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found: export a model there first"):
        ModelManager("ganimation", tmp_path / "nothing")
    with pytest.raises(ValueError, match="poll_interval_s=0 is invalid"):
        ModelManager("ganimation", tmp_path, poll_interval_s=0)
    with pytest.raises(ValueError, match="max_concurrent_requests=0 is invalid"):
        ModelManager("ganimation", tmp_path, max_concurrent_requests=0)
