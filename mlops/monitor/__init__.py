"""Monitoring of live traffic: drift, decay, actions."""
