"""The network explorer: a read-only web app over the ledger."""
