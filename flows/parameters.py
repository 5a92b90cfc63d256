"""Typed run parameters shared by the flows' forms: Prefect validates them before a run starts.

Invariants: a ``SubnetName`` follows the ledger's name rule (``ledger.names``); an
``EpochNumber`` is a non-negative epoch no larger than ``EPOCH_MAX``. Prefect takes each field's
description from the flow's docstring, not from ``Field``.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field

from taoflow.ledger.names import NAME_CHARS_MAX, NAME_RE

EPOCH_MAX: Final = 999_999_999
"""Largest epoch number a form accepts."""

SubnetName = Annotated[
    str,
    Field(min_length=1, max_length=NAME_CHARS_MAX, pattern=f"^{NAME_RE.pattern}$"),
]
EpochNumber = Annotated[int, Field(ge=0, le=EPOCH_MAX)]
