"""Registry: the ``alias_history`` and ``events`` tables.

Revision ID: 0003
Revises: 0002

Written by hand and frozen. MLflow keeps only an alias's current version;
``alias_history`` keeps every change (an open row, ``to_us`` NULL, is the
current holder). ``events`` is the lifecycle event log that is published on
MQTT after it is stored (see ``pumpops.registry`` and ADR 0007).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _key(length: int) -> sa.types.TypeEngine[str]:
    # Byte-order collation on PostgreSQL, like SQLite's default BINARY.
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def _id() -> sa.types.TypeEngine[int]:
    # SQLite: INTEGER PRIMARY KEY is the autoincrementing rowid; PostgreSQL: BIGINT.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the alias history and events tables and their indexes."""
    op.create_table(
        "alias_history",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        sa.Column("group_name", _key(64), nullable=False),
        sa.Column("alias", _key(128), nullable=False),
        sa.Column("model_name", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("from_us", sa.BigInteger(), nullable=False),
        sa.Column("to_us", sa.BigInteger(), nullable=True),
        sa.Column("set_by", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
    )
    op.create_index(
        "ix_alias_history_group_alias_from_us", "alias_history", ["group_name", "alias", "from_us"]
    )
    op.create_table(
        "events",
        sa.Column("seq", _id(), primary_key=True, autoincrement=True),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
        sa.Column("kind", _key(64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
    )
    op.create_index("ix_events_kind_seq", "events", ["kind", "seq"])
    op.create_index("ix_events_time_us", "events", ["time_us"])


def downgrade() -> None:
    """Drop the alias history and the events."""
    op.drop_table("events")
    op.drop_table("alias_history")
