"""Hour aggregates: the ``agent_hour_aggregates`` table (issue 18).

Revision ID: 0010
Revises: 0009

Written by hand and frozen. One row per (device, hour of message time, model)
with the mergeable sums of the agents' summaries of that hour and its alarm
message count (``store/_aggregates.py``), written by the incremental monitor
and pruned with summaries (``[retention] summaries_days``). Not partitioned: a
row per device-hour is about 1/60 of the agent messages it sums (at one
message a minute); ADR 0016 says when to partition it. Empty at creation:
the monitor fills the hours it sees from then on.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _key(length: int) -> sa.types.TypeEngine[str]:
    # Byte-order collation on PostgreSQL, like SQLite's default BINARY.
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    """Create the hour aggregates table and its index by hour."""
    op.create_table(
        "agent_hour_aggregates",
        sa.Column("device_id", _key(64), primary_key=True),
        sa.Column("hour_us", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("model", _key(200), primary_key=True),
        sa.Column("summaries", sa.Integer(), nullable=False),
        sa.Column("alarms_raised", sa.BigInteger(), nullable=False),
        sa.Column("period_ms", sa.BigInteger(), nullable=False),
        sa.Column("scored", sa.Integer(), nullable=False),
        sa.Column("p50_sum", sa.Double(), nullable=False),
        sa.Column("p50_n", sa.Integer(), nullable=False),
        sa.Column("p95_max", sa.Double(), nullable=True),
        sa.Column("score_max", sa.Double(), nullable=True),
        sa.Column("mean_wsum", sa.Double(), nullable=False),
        sa.Column("mean_w", sa.BigInteger(), nullable=False),
        sa.Column("alarm_messages", sa.Integer(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_agent_hour_aggregates_hour_us", "agent_hour_aggregates", ["hour_us"])


def downgrade() -> None:
    """Drop the table (the aggregates can be rebuilt from stored summaries and alarms)."""
    op.drop_index("ix_agent_hour_aggregates_hour_us", table_name="agent_hour_aggregates")
    op.drop_table("agent_hour_aggregates")
