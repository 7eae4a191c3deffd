"""Audit signatures: the ``signature`` column of the ``audit`` table.

Revision ID: 0008
Revises: 0007

Written by hand and frozen. Each audit entry appended by a hub process that
holds the workspace's online audit key carries ``<key id>:<Ed25519 signature
in hex>`` over its canonical bytes (see ``pumpops/audit/_sign.py`` and ADR
0013). Entries written before this revision keep NULL: ``pumpops audit
verify`` reports them as unsigned legacy entries as long as they all come
before the first signed one. The hash chain is unchanged (the signature is not
part of an entry's hash).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable ``signature`` column to ``audit``."""
    op.add_column("audit", sa.Column("signature", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop the ``signature`` column of ``audit`` (SQLite rebuilds the table)."""
    with op.batch_alter_table("audit") as batch:
        batch.drop_column("signature")
