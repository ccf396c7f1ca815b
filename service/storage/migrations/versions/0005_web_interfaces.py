"""The web interfaces: runners-up and embeddings kept with each prediction, tickets filed
through the self-service page, and what self-service visits ended with.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.storage.tables import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

IDENTIFIER = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("predictions") as predictions:
        predictions.add_column(sa.Column("alternatives", sa.JSON(), nullable=True))
        predictions.add_column(sa.Column("embedding", sa.LargeBinary(), nullable=True))
    op.create_table(
        "tickets",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("requester", sa.String(255), nullable=True),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("prediction_id", sa.String(36), nullable=False),
        sa.Column("assignment_id", IDENTIFIER, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tickets"),
    )
    op.create_index("ix_tickets_created_at", "tickets", ["created_at"])
    op.create_index("ix_tickets_prediction_id", "tickets", ["prediction_id"])
    op.create_table(
        "self_service_events",
        sa.Column("id", IDENTIFIER, primary_key=True, autoincrement=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("language", sa.String(8), nullable=True),
        sa.Column("source_id", sa.String(255), nullable=True),
        sa.Column("ticket_id", sa.String(36), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_self_service_events"),
    )
    op.create_index("ix_self_service_events_created_at", "self_service_events", ["created_at"])


def downgrade() -> None:
    op.drop_table("self_service_events")
    op.drop_table("tickets")
    with op.batch_alter_table("predictions") as predictions:
        predictions.drop_column("embedding")
        predictions.drop_column("alternatives")
