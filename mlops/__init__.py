"""mlops: GitOps continuous integration and delivery for machine-learning models."""

__version__ = "0.1.0"
