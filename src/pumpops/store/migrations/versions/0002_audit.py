"""Audit trail: the append-only, hash-chained ``audit`` table.

Revision ID: 0002
Revises: 0001

Written by hand and frozen. ``seq`` is not autoincremented: the writer
assigns the tail's number + 1 under a lock, and the entry's hash covers it
(see ``pumpops.audit`` and ADR 0006).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the audit table and its indexes."""
    op.create_table(
        "audit",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_subject_seq", "audit", ["subject", "seq"])
    op.create_index("ix_audit_time_us", "audit", ["time_us"])


def downgrade() -> None:
    """Drop the audit table (and the whole trail)."""
    op.drop_table("audit")
