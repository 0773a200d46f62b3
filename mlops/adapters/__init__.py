"""Adapters: the only modules that talk to git, DVC and GitLab."""
