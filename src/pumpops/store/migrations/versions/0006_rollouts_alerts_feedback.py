"""Rollouts, fleet alerts, alarm feedback: the ``rollouts``, ``fleet_alerts`` and ``alarm_feedback`` tables.

Revision ID: 0006
Revises: 0005

Written by hand and frozen. ``rollouts``: one row per staged rollout, its
state machine's JSON (``state``) rewritten at every step, ``created_at_us``
kept, so a hub restarted mid-rollout picks it up. ``fleet_alerts``: one row per
fleet-level alert (a drifting group), opened once by its id and closed at most
once. ``alarm_feedback``: a technician's verdict on an alarm, one row per alarm
id (``<device_id>:<started_ms>``), the newest verdict kept (the audit trail
keeps every one). No foreign keys to ``devices``: like agent messages, these
may name devices that are not registered.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _key(length: int) -> sa.types.TypeEngine[str]:
    # Byte-order collation on PostgreSQL, like SQLite's default BINARY.
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    """Create the rollouts, fleet alerts and alarm feedback tables and their indexes."""
    op.create_table(
        "rollouts",
        sa.Column("rollout_id", _key(128), primary_key=True),
        sa.Column("group_name", _key(64), nullable=False),
        sa.Column("release", sa.Text(), nullable=False),
        sa.Column("status", _key(32), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_rollouts_group_created_at_us", "rollouts", ["group_name", "created_at_us"])
    op.create_index("ix_rollouts_created_at_us", "rollouts", ["created_at_us"])
    op.create_table(
        "fleet_alerts",
        sa.Column("alert_id", _key(128), primary_key=True),
        sa.Column("group_name", _key(64), nullable=False),
        sa.Column("kind", _key(64), nullable=False),
        sa.Column("opened_at_us", sa.BigInteger(), nullable=False),
        sa.Column("closed_at_us", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_fleet_alerts_group_opened_at_us", "fleet_alerts", ["group_name", "opened_at_us"])
    op.create_index("ix_fleet_alerts_opened_at_us", "fleet_alerts", ["opened_at_us"])
    op.create_table(
        "alarm_feedback",
        sa.Column("alarm_id", _key(128), primary_key=True),
        sa.Column("device_id", _key(64), nullable=False),
        sa.Column("verdict", _key(16), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_alarm_feedback_device_at_us", "alarm_feedback", ["device_id", "at_us"])
    op.create_index("ix_alarm_feedback_at_us", "alarm_feedback", ["at_us"])


def downgrade() -> None:
    """Drop the alarm feedback, fleet alerts and rollouts."""
    op.drop_table("alarm_feedback")
    op.drop_table("fleet_alerts")
    op.drop_table("rollouts")
