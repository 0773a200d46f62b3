"""Prediction service (FastAPI, optional extra `serve`)."""
