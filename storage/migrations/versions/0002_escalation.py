"""escalation: SLA ladder, handoff, ratings, idempotent ticket events, matter circles

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TICKET_TIMES = (
    "first_response_remind_at",
    "resolve_remind_at",
    "human_active_at",
    "rating_asked_at",
    "rated_at",
)


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        for name in _TICKET_TIMES:
            batch.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("human_active_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("rating", sa.Integer(), nullable=True))
    with op.batch_alter_table("ticket_events") as batch:
        batch.add_column(sa.Column("dedupe_key", sa.String(length=160), nullable=True))
    op.create_index(
        "ix_ticket_events_dedupe_key", "ticket_events", ["dedupe_key"], unique=True
    )
    op.create_table(
        "matters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("circle_id", sa.Integer(), nullable=False),
        sa.Column("parent_circle_id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("transcript", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dissolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["circle_id"], ["circles.id"], name=op.f("fk_matters_circle_id_circles")
        ),
        sa.ForeignKeyConstraint(
            ["parent_circle_id"], ["circles.id"], name=op.f("fk_matters_parent_circle_id_circles")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_matters_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_matters")),
        sa.UniqueConstraint("circle_id", name=op.f("uq_matters_circle_id")),
    )
    op.create_index(op.f("ix_matters_parent_circle_id"), "matters", ["parent_circle_id"])
    op.create_index(op.f("ix_matters_ticket_id"), "matters", ["ticket_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_matters_ticket_id"), table_name="matters")
    op.drop_index(op.f("ix_matters_parent_circle_id"), table_name="matters")
    op.drop_table("matters")
    op.drop_index("ix_ticket_events_dedupe_key", table_name="ticket_events")
    with op.batch_alter_table("ticket_events") as batch:
        batch.drop_column("dedupe_key")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("rating")
        batch.drop_column("human_active_by")
        for name in reversed(_TICKET_TIMES):
            batch.drop_column(name)
