"""The base of every epoch-stage error that explains itself in one line.

Light on purpose (no imports): the CLI catches ``StageError`` to print one line without
importing Dask, torch or MLflow.
"""

from __future__ import annotations


class StageError(RuntimeError):
    """An epoch stage could not finish; the message says why and what to do."""
