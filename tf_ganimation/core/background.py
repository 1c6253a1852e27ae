"""Work on a second thread: reading ahead of a loop, and writing behind it.

    for frame in prefetch(video_io.read_frames(path), depth=16):   # decoding runs ahead on its own thread
        ...
        sink.put((image, frame.pts))                             # encoding runs behind on its own thread
    with Sink(lambda item: writer.write(*item), depth=16) as sink: ...

FFmpeg, TensorFlow, NumPy and Pillow release Python's GIL in their long loops, so a decoder, the model
and an encoder on three threads share the CPU's cores. An error raised on the second thread is raised
again on the caller's; queues are bounded, so at most `depth` items are in flight, whatever the length
of the stream.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_END = object()
_POLL_S = 0.1


class _Failure:
    """An exception raised on the background thread, carried to the caller's."""

    def __init__(self, error: BaseException):
        self.error = error


def prefetch(items: Iterable, depth: int) -> Iterator:
    """The items of an iterable, produced on a background thread up to `depth` ahead of the caller.

    The iterable is iterated (and closed, when it is a generator) on that thread only. An exception it
    raises is raised by this iterator after the items before it. Leaving the loop early, or an error in
    the caller's loop, stops the thread and closes the iterable.

    Args:
        items: any iterable; a generator's own `finally` runs on the background thread.
        depth: the most items produced but not yet taken, >= 1.
    """
    if not (isinstance(depth, int) and depth >= 1):
        raise ValueError(f"depth={depth!r} is invalid: expected an integer >= 1")
    return _prefetched(items, depth)


def _prefetched(items: Iterable, depth: int) -> Iterator:
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        end, iterator = _END, None
        try:
            iterator = iter(items)
            for item in iterator:
                if not offer(item):
                    return
        except BaseException as error:  # carried to the caller's thread, raised there
            end = _Failure(error)
        finally:
            try:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
            except BaseException as error:
                end = end if isinstance(end, _Failure) else _Failure(error)
        offer(end)

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = ready.get(timeout=_POLL_S)
            except queue.Empty:
                if not thread.is_alive() and ready.empty():
                    raise RuntimeError("the prefetch thread ended without its last item") from None
                continue
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


class Sink:
    """Calls `consume(item)` for every item put, in order, on a background thread.

    Use it as a context manager: leaving the block normally waits for every item to be consumed and
    raises the first error `consume` raised; leaving it with an error drops the items not yet consumed.
    `put` raises a consumer's error as soon as it is known, so a failed encoder stops the loop feeding it.

    Args:
        consume: called with each item on the background thread.
        depth: the most items put but not yet consumed, >= 1 (put blocks beyond it).
    """

    def __init__(self, consume: Callable[[Any], None], depth: int):
        if not (isinstance(depth, int) and depth >= 1):
            raise ValueError(f"depth={depth!r} is invalid: expected an integer >= 1")
        self._consume = consume
        self._pending: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._dropping = False
        self._thread = threading.Thread(target=self._run, name="sink", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._pending.get()
            if item is _END:
                return
            if self._error is None and not self._dropping:
                try:
                    self._consume(item)
                except BaseException as error:  # carried to the caller's thread, raised there
                    self._error = error

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item) -> None:
        """Queues an item; raises the consumer's error if it has failed."""
        self._raise_error()
        self._pending.put(item)

    def close(self) -> None:
        """Waits until every item is consumed; raises the consumer's first error."""
        if self._thread.is_alive():
            self._pending.put(_END)
            self._thread.join()
        self._raise_error()

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        if error_type is None:
            self.close()
        else:
            self._dropping = True
            if self._thread.is_alive():
                self._pending.put(_END)
                self._thread.join()
