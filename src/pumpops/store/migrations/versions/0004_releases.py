"""Releases: the ``releases`` table.

Revision ID: 0004
Revises: 0003

Written by hand and frozen. One row per ``pumpops release create``: the model
version, the device group, the targets, where the bundles were written, and
``record``, canonical JSON of what was built per target and why (precision,
opset, optimisation, budgets measured, bundle manifest digests).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _key(length: int) -> sa.types.TypeEngine[str]:
    # Byte-order collation on PostgreSQL, like SQLite's default BINARY.
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def _id() -> sa.types.TypeEngine[int]:
    # SQLite: INTEGER PRIMARY KEY is the autoincrementing rowid; PostgreSQL: BIGINT.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the releases table and its index."""
    op.create_table(
        "releases",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("group_name", _key(64), nullable=False),
        sa.Column("targets", sa.Text(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("bundle_root", sa.Text(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
    )
    op.create_index("ix_releases_group_created_us", "releases", ["group_name", "created_us"])


def downgrade() -> None:
    """Drop the releases."""
    op.drop_table("releases")
