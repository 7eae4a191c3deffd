"""API tokens and alarm acknowledgements: the ``api_tokens`` and ``alarm_acks`` tables.

Revision ID: 0007
Revises: 0006

Written by hand and frozen. One row per token made by ``pumpops tokens
create``: its public id (``token_id``, what ``tokens list`` shows and ``tokens
revoke`` takes), the owner's name (the actor of every audit entry its requests
write), its role (``viewer``, ``operator``, ``admin``), and the SHA-256 of the
secret token (the token itself is printed once and never stored). A token is
refused once ``revoked_at_us`` is set or ``expires_at_us`` has passed; rows are
never deleted, so the audit trail's actors stay explainable. ``alarm_acks``: an
operator's acknowledgement of an alarm (``<device_id>:<started_ms>``), one row
per alarm, the first acknowledgement kept (the audit trail keeps every one).
Two indexes on ``agent_messages`` serve the API: alarms newest first across the
fleet (``kind, ts_us``) and the event stream's poll for messages received since
its cursor (``kind, received_at_us``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _key(length: int) -> sa.types.TypeEngine[str]:
    # Byte-order collation on PostgreSQL, like SQLite's default BINARY.
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    """Create the API tokens and alarm acknowledgement tables and their indexes."""
    op.create_table(
        "api_tokens",
        sa.Column("token_id", _key(32), primary_key=True),
        sa.Column("name", _key(64), nullable=False),
        sa.Column("role", _key(16), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("expires_at_us", sa.BigInteger(), nullable=True),
        sa.Column("revoked_at_us", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_api_tokens_token_sha256", "api_tokens", ["token_sha256"], unique=True)
    op.create_index("ix_api_tokens_name", "api_tokens", ["name"])
    op.create_table(
        "alarm_acks",
        sa.Column("alarm_id", _key(128), primary_key=True),
        sa.Column("device_id", _key(64), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_alarm_acks_device_id", "alarm_acks", ["device_id"])
    op.create_index("ix_agent_messages_kind_ts_us", "agent_messages", ["kind", "ts_us"])
    op.create_index("ix_agent_messages_kind_received_at_us", "agent_messages", ["kind", "received_at_us"])


def downgrade() -> None:
    """Drop the two agent message indexes and the alarm acknowledgement and API tokens tables."""
    op.drop_index("ix_agent_messages_kind_received_at_us", table_name="agent_messages")
    op.drop_index("ix_agent_messages_kind_ts_us", table_name="agent_messages")
    op.drop_table("alarm_acks")
    op.drop_table("api_tokens")
