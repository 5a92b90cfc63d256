"""Fault injection for crash tests: ``TAOFLOW_FAULT_POINT=<name>`` kills the process at that point.

The kill is ``SIGKILL`` (no cleanup, no flush), which is what a power cut or OOM kill looks like to
the ledger. Unset in production; the check is a dictionary lookup.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "TAOFLOW_FAULT_POINT"
FAULT_POINTS = (
    "before_write",
    "after_write",
    "after_fsync",
    "after_rename",
    "after_dir_fsync",
    "after_commit_record",
)
"""The points of a batch commit (the kill -9 test of ``tests/test_ledger_store.py``)."""
SNAPSHOT_FAULT_POINTS = ("snapshot_mid_tables", "snapshot_before_index")
"""The points of a snapshot write (``tests/test_snapshots.py``)."""


def fault_point(name: str) -> None:
    """Kill this process with SIGKILL if the fault environment variable names ``name``."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
