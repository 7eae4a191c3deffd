"""Drift statistics against reference statistics, alerts, and model health across the fleet.

Arrives with the monitoring issue. May import: schema, store, errors, numpy, scipy.
"""
