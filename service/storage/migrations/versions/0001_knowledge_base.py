"""Knowledge base: resolved tickets with their embeddings, and the log of changes to them.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.storage.tables import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

IDENTIFIER = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "knowledge_entries",
        sa.Column("id", IDENTIFIER, primary_key=True, autoincrement=True),
        sa.Column("source_id", sa.String(255), nullable=False),
        sa.Column("source_system", sa.String(64), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("resolution", sa.Text(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("queue", sa.String(255), nullable=True),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("embedder", sa.String(255), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_knowledge_entries"),
        sa.UniqueConstraint("source_id", name="uq_knowledge_entries_source_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_knowledge_entries_queue", "knowledge_entries", ["queue"])
    op.create_index("ix_knowledge_entries_language", "knowledge_entries", ["language"])
    op.create_index("ix_knowledge_entries_created_at", "knowledge_entries", ["created_at"])
    op.create_table(
        "knowledge_changes",
        sa.Column("id", IDENTIFIER, primary_key=True, autoincrement=True),
        sa.Column("entry_id", IDENTIFIER, nullable=False),
        sa.Column("operation", sa.String(8), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_knowledge_changes"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_knowledge_changes_entry_id", "knowledge_changes", ["entry_id"])


def downgrade() -> None:
    op.drop_table("knowledge_changes")
    op.drop_table("knowledge_entries")
