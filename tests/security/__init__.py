"""Attacks on what mlops loads and serves (issue 13)."""
