"""Model registry: git tags in GTO's grammar (versions, stages, history)."""
