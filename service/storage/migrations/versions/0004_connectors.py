"""Connectors: events taken once per id, tickets triaged with what was written back, and
outbound webhook deliveries with their dead letters.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.storage.tables import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

IDENTIFIER = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _id() -> sa.Column:
    return sa.Column("id", IDENTIFIER, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "connector_events",
        _id(),
        sa.Column("system", sa.String(32), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("ticket_id", sa.String(255), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_connector_events"),
        sa.UniqueConstraint("system", "event_id", name="uq_connector_events_event"),
    )
    op.create_index("ix_connector_events_ticket_id", "connector_events", ["ticket_id"])
    op.create_index("ix_connector_events_received_at", "connector_events", ["received_at"])
    op.create_table(
        "connector_tickets",
        _id(),
        sa.Column("system", sa.String(32), nullable=False),
        sa.Column("ticket_id", sa.String(255), nullable=False),
        sa.Column("prediction_id", sa.String(36), nullable=False),
        sa.Column("written", sa.JSON(), nullable=False),
        sa.Column("seen", sa.JSON(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("review", sa.Boolean(), nullable=False),
        sa.Column("triaged_at", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_connector_tickets"),
        sa.UniqueConstraint("system", "ticket_id", name="uq_connector_tickets_ticket"),
    )
    op.create_index("ix_connector_tickets_prediction_id", "connector_tickets", ["prediction_id"])
    op.create_table(
        "webhook_deliveries",
        _id(),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
    )
    op.create_index("ix_webhook_deliveries_status", "webhook_deliveries", ["status"])


def downgrade() -> None:
    for table in ("webhook_deliveries", "connector_tickets", "connector_events"):
        op.drop_table(table)
