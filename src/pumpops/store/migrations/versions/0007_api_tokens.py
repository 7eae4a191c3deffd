"""API tokens: the ``api_tokens`` table.

Revision ID: 0007
Revises: 0006

Written by hand and frozen. One row per token made by ``pumpops tokens
create``: its public id (``token_id``, what ``tokens list`` shows and ``tokens
revoke`` takes), the owner's name (the actor of every audit entry its requests
write), its role (``viewer``, ``operator``, ``admin``), and the SHA-256 of the
secret token (the token itself is printed once and never stored). A token is
refused once ``revoked_at_us`` is set or ``expires_at_us`` has passed; rows are
never deleted, so the audit trail's actors stay explainable.
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
    """Create the API tokens table and its indexes."""
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


def downgrade() -> None:
    """Drop the API tokens table."""
    op.drop_table("api_tokens")
