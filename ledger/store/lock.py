"""An exclusive, process-wide writer lock on the ledger directory (``flock``).

Fault model: the lock is released by the kernel when its holder dies (even by ``kill -9``), so a
crashed writer never leaves the ledger locked. Readers never take it.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from taoflow.ledger.errors import LockTimeout

LOCK_POLL_S = 0.01


@contextmanager
def writer_lock(path: Path, *, timeout_s: float) -> Iterator[None]:
    """Hold the exclusive lock on ``path`` for the duration of the block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"ledger writer lock busy for {timeout_s} s") from None
                time.sleep(LOCK_POLL_S)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
