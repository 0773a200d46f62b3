"""Data: reading tables, the data contract (schema), statistics profiles, drift and skew."""
