"""Governance work outside the ledger: backtests attached to parameter-change proposals."""
