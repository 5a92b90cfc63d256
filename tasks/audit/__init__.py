"""Audits of committed epochs: replay, explain, what-if and validator audits (read-only)."""
