"""Tests for tf_ganimation/core/progress.py: the exact text of the bar, on a terminal and in a log."""

import io

from tf_ganimation.core.progress import Progress


class Clock:
    """A clock that moves only when told: seconds since 100."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_line_text_with_a_counter():
    clock = Clock()
    progress = Progress(10, None, unit="photos", clock=clock)
    for kept in (1, 0, 1):
        clock.now += 1.0
        progress.update(kept=kept)
    assert progress.line() == "[#########.....................] 3/10 photos, kept 2, 1.0 photos/s, 3 s, ETA 7 s"
    clock.now += 3.0  # no item done in 3 s: the rate falls, the time left grows
    assert progress.line() == "[#########.....................] 3/10 photos, kept 2, 0.5 photos/s, 6 s, ETA 14 s"


def test_line_text_without_counters_and_past_the_total():
    clock = Clock()
    progress = Progress(4, None, unit="steps", clock=clock)
    assert progress.line() == "[..............................] 0/4 steps, 0.0 steps/s, 0 s, ETA 0 s"
    clock.now += 2.0
    progress.update(5)
    assert progress.line() == "[##############################] 5/4 steps, 2.5 steps/s, 2 s, ETA 0 s"


def test_a_plain_stream_gets_a_line_per_interval_and_at_the_end():
    clock, stream = Clock(), io.StringIO()
    progress = Progress(10, stream, unit="photos", interval_s=2.5, clock=clock)
    for index in range(10):
        clock.now += 1.0
        progress.update(kept=index % 2)
    progress.close()  # nothing to end on a plain stream
    assert stream.getvalue().splitlines() == [
        "[#########.....................] 3/10 photos, kept 1, 1.0 photos/s, 3 s, ETA 7 s",
        "[##################............] 6/10 photos, kept 3, 1.0 photos/s, 6 s, ETA 4 s",
        "[###########################...] 9/10 photos, kept 4, 1.0 photos/s, 9 s, ETA 1 s",
        "[##############################] 10/10 photos, kept 5, 1.0 photos/s, 10 s, ETA 0 s"]
    assert stream.getvalue().endswith("\n") and "\r" not in stream.getvalue()


def test_a_terminal_gets_one_line_redrawn_in_place():
    clock, stream = Clock(), Terminal()
    progress = Progress(3, stream, unit="photos", clock=clock)
    clock.now += 0.1
    progress.update(kept=1)  # under 0.2 s since the start: not drawn
    assert stream.getvalue() == ""
    clock.now += 0.2
    progress.update(kept=0)
    clock.now += 0.1
    progress.update(kept=1)  # the last item is always drawn
    progress.close()
    assert stream.getvalue() == (
        "\r[####################..........] 2/3 photos, kept 1, 6.7 photos/s, 0 s, ETA 0 s"
        "\r[##############################] 3/3 photos, kept 2, 7.5 photos/s, 0 s, ETA 0 s\n")


def test_no_stream_writes_nothing_and_close_without_items_ends_no_line():
    progress = Progress(2, None)
    progress.update()
    progress.update()
    progress.close()
    assert progress.done == 2 and progress.counters == {}
    stream = Terminal()
    Progress(5, stream).close()
    assert stream.getvalue() == ""
