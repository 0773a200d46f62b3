"""Deployments: targets, atomic switch, smoke test, rollback."""
