"""Compliance logging: an append-only, tamper-evident audit trail."""
