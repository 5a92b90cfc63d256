"""Errors raised by the ledger.

Every invariant of the ledger is checked with an explicit exception from this module, never a bare
``assert``: a violated invariant must stop the commit even when Python runs with ``-O``.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base class of every ledger error."""


class SupplyIdentityViolated(LedgerError):
    """total issued − total burned ≠ Σ balances + Σ stakes + Σ locked (after applying a batch)."""


class LedgerCorrupted(LedgerError):
    """The stored ledger does not verify; ``batch_no`` names the first bad batch (or None)."""

    def __init__(self, message: str, *, batch_no: int | None) -> None:
        super().__init__(message)
        self.batch_no = batch_no


class BatchRejected(LedgerError):
    """A batch could not be committed because one of its transactions was rejected."""

    def __init__(self, tx_id: str, reason: str) -> None:
        super().__init__(f"transaction {tx_id!r} rejected: {reason}")
        self.tx_id = tx_id
        self.reason = reason


class LockTimeout(LedgerError):
    """Another writer held the ledger lock for longer than the caller was willing to wait."""


class LedgerFormatOutdated(LedgerError):
    """The ledger was written in an older format; ``taoflow ledger migrate`` converts it."""


AMOUNT_SHOWN_CHARS_MAX = 40
"""An amount quoted in an error is cut to this many characters (the message stays one line)."""


class InvalidAmount(LedgerError, ValueError):
    """A τ amount given as text that is not an exact, acceptable amount; ``reason`` says why.

    The message is one line: the text is quoted with ``repr`` (control characters escaped) and
    cut to ``AMOUNT_SHOWN_CHARS_MAX`` characters.
    """

    def __init__(self, text: str, reason: str) -> None:
        shown = text if len(text) <= AMOUNT_SHOWN_CHARS_MAX else text[:AMOUNT_SHOWN_CHARS_MAX] + "…"
        super().__init__(f"invalid amount {shown!r}: {reason}")
        self.text = text
        self.reason = reason
