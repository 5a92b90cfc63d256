"""The only part of the ledger that touches disk: batch files, the commit log, the lock."""

from taoflow.ledger.store.ledger import CommitResult, Finality, Ledger, VerifyReport

__all__ = ["CommitResult", "Finality", "Ledger", "VerifyReport"]
