"""Reusable contract test bases that every plugin / backend implementation inherits."""
