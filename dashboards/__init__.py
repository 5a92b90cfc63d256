"""Read-only dashboards over the ledger views."""
