"""Desired vs reported state per device, rollout waves, health gates and automatic rollback.

Arrives with the rollout issue. The state machine is pure decision code; may import: store, telemetry, errors.
"""
