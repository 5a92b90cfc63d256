"""A test-level guard against hangs: a test still running after its bound fails instead of
blocking CI. It bounds the wait; it never asserts how fast anything is."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Hang(Exception):
    """The guarded test was still running when its bound passed."""


@contextmanager
def hang_guard(bound_s: int) -> Iterator[None]:
    """Raise ``Hang`` in the main thread if the block runs longer than ``bound_s`` seconds."""

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"test still running after {bound_s} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(bound_s)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
