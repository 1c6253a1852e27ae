"""Tests for tf_ganimation/core/background.py: read-ahead and write-behind threads, their errors and bounds."""

import threading
import time

import pytest

from tf_ganimation.core import background


def test_prefetch_yields_every_item_in_order_from_another_thread():
    threads = []

    def numbers():
        for number in range(50):
            threads.append(threading.current_thread())
            yield number

    assert list(background.prefetch(numbers(), depth=4)) == list(range(50))
    assert set(threads) == {threads[0]} and threads[0] is not threading.current_thread()


def test_prefetch_runs_at_most_depth_items_ahead():
    produced = []

    def numbers():
        for number in range(100):
            produced.append(number)
            yield number

    items = background.prefetch(numbers(), depth=3)
    assert next(items) == 0
    time.sleep(0.3)  # ample time to run ahead, were it unbounded
    assert len(produced) <= 1 + 3 + 1  # the one taken, the queue, the one waiting to be queued
    items.close()


def test_prefetch_raises_the_producers_error_after_the_items_before_it():
    def failing():
        yield 1
        yield 2
        raise OSError("disk gone")

    seen = []
    with pytest.raises(OSError, match="disk gone"):
        for item in background.prefetch(failing(), depth=8):
            seen.append(item)
    assert seen == [1, 2]


def test_prefetch_raises_what_iter_or_close_raise_instead_of_waiting():
    with pytest.raises(TypeError):
        list(background.prefetch(42, depth=2))  # not iterable: raised here, not a hang

    def closing_fails():
        try:
            yield 1
        finally:
            raise OSError("close failed")

    with pytest.raises(OSError, match="close failed"):
        list(background.prefetch(closing_fails(), depth=2))


def test_leaving_a_prefetch_early_stops_the_thread_and_closes_the_generator():
    closed = threading.Event()

    def endless():
        try:
            number = 0
            while True:
                yield number
                number += 1
        finally:
            closed.set()

    items = background.prefetch(endless(), depth=2)
    assert [next(items) for _ in range(5)] == [0, 1, 2, 3, 4]
    items.close()
    assert closed.wait(2.0)
    assert not [thread for thread in threading.enumerate() if thread.name == "prefetch"]


def test_sink_consumes_every_item_in_order_before_the_block_ends():
    consumed = []

    def consume(item):
        time.sleep(0.001)
        consumed.append((item, threading.current_thread()))

    with background.Sink(consume, depth=2) as sink:
        for number in range(30):
            sink.put(number)
    assert [item for item, _ in consumed] == list(range(30))
    assert all(thread is not threading.current_thread() for _, thread in consumed)


def test_sink_raises_the_consumers_error_on_put_or_at_the_end():
    def consume(item):
        if item == 3:
            raise ValueError("encoder failed at 3")

    with pytest.raises(ValueError, match="encoder failed at 3"):
        with background.Sink(consume, depth=1) as sink:
            for number in range(1000):
                sink.put(number)
    assert number < 999  # put raised it long before the loop's end


def test_sink_drops_the_rest_when_the_block_fails():
    consumed = []
    release = threading.Event()

    def consume(item):
        release.wait(2.0)
        time.sleep(0.05)
        consumed.append(item)

    with pytest.raises(KeyError):
        with background.Sink(consume, depth=10) as sink:
            for number in range(10):
                sink.put(number)
            release.set()
            raise KeyError("the loop failed")
    assert len(consumed) < 10


@pytest.mark.parametrize("depth", [0, -1, 1.5, None])
def test_depth_must_be_a_positive_integer(depth):
    with pytest.raises(ValueError, match="depth"):
        background.Sink(print, depth)
    with pytest.raises(ValueError, match="depth"):
        background.prefetch([1], depth)
