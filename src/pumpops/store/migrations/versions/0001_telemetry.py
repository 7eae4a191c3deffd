"""Telemetry: devices, the message ledger, narrow readings and dead letters.

Revision ID: 0001
Revises: (none)

Written by hand and frozen: later changes are new revisions. Timestamps are
BIGINT microseconds since the Unix epoch (UTC): engine-neutral and cheap to
``COPY`` (see ``pumpops.store._tables`` and ADR 0004).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _key(length: int) -> sa.types.TypeEngine[str]:
    # Byte-order collation on PostgreSQL, like SQLite's default BINARY.
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    """Create the telemetry tables."""
    op.create_table(
        "devices",
        sa.Column("device_id", _key(64), primary_key=True),
        sa.Column("site", _key(64), nullable=False),
        sa.Column("profile_id", _key(64), nullable=False),
        sa.Column("group_name", _key(64), nullable=False),
        sa.Column("registered_at_us", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "messages",
        sa.Column("device_id", _key(64), primary_key=True),
        sa.Column("msg_id", _key(128), primary_key=True),
        sa.Column("payload_sha256", sa.String(64), nullable=False),
        sa.Column("received_at_us", sa.BigInteger(), nullable=False),
        sa.Column("readings", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.device_id"], name="fk_messages_device_id"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "readings",
        sa.Column("device_id", _key(64), primary_key=True),
        sa.Column("sensor", _key(64), primary_key=True),
        sa.Column("ts_us", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("value", sa.Double(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "dead_letters",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("received_at_us", sa.BigInteger(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=True),
        sa.Column("msg_id", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_dead_letters_reason_received_at_us", "dead_letters", ["reason", "received_at_us"])
    op.create_index("ix_dead_letters_received_at_us", "dead_letters", ["received_at_us"])


def downgrade() -> None:
    """Drop the telemetry tables (and everything in them)."""
    op.drop_table("dead_letters")
    op.drop_table("readings")
    op.drop_table("messages")
    op.drop_table("devices")
