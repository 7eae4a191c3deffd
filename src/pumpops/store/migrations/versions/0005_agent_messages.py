"""Agent messages: the ``agent_messages`` table.

Revision ID: 0005
Revises: 0004

Written by hand and frozen. One row per message of a device agent (alarm,
summary, drift report, state), keyed by its message id ``<device_id>:<seq>``:
a resend finds its id with the same payload hash and writes nothing. ``seq``
is the number after the last ``:``, its own column so that ordering is
numeric. No foreign key to ``devices``: agents may report before their device
is registered. See ``docs/protocol.md`` ("Agent messages").
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _key(length: int) -> sa.types.TypeEngine[str]:
    # Byte-order collation on PostgreSQL, like SQLite's default BINARY.
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    """Create the agent messages table and its indexes."""
    op.create_table(
        "agent_messages",
        sa.Column("msg_id", _key(128), primary_key=True),
        sa.Column("device_id", _key(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("site", _key(64), nullable=False),
        sa.Column("kind", _key(16), nullable=False),
        sa.Column("ts_us", sa.BigInteger(), nullable=False),
        sa.Column("received_at_us", sa.BigInteger(), nullable=False),
        sa.Column("agent_version", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("payload_sha256", sa.String(64), nullable=False),
    )
    op.create_index("ix_agent_messages_device_kind_ts_us", "agent_messages", ["device_id", "kind", "ts_us"])
    op.create_index("ix_agent_messages_device_seq", "agent_messages", ["device_id", "seq"])


def downgrade() -> None:
    """Drop the agent messages."""
    op.drop_table("agent_messages")
