"""proactive care: opt-outs, agent-first drafts, daily runs, a circle's care route

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("circles") as batch:
        batch.add_column(sa.Column("care_route", sa.String(length=16), nullable=True))
    op.create_table(
        "care_opt_outs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("member_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_care_opt_outs_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_opt_outs")),
    )
    op.create_index("ix_care_opt_outs_customer", "care_opt_outs", ["customer_id", "category"])
    op.create_table(
        "care_drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=160), nullable=False),
        sa.Column("circle_id", sa.Integer(), nullable=False),
        sa.Column("followup_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("recipient_id", sa.String(length=64), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("auto_send_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["circle_id"], ["circles.id"], name=op.f("fk_care_drafts_circle_id_circles")
        ),
        sa.ForeignKeyConstraint(
            ["followup_id"], ["followups.id"], name=op.f("fk_care_drafts_followup_id_followups")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_drafts")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_care_drafts_dedupe_key")),
    )
    op.create_index(op.f("ix_care_drafts_circle_id"), "care_drafts", ["circle_id"])
    op.create_table(
        "care_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("planned", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_runs")),
        sa.UniqueConstraint("day", name=op.f("uq_care_runs_day")),
    )


def downgrade() -> None:
    op.drop_table("care_runs")
    op.drop_index(op.f("ix_care_drafts_circle_id"), table_name="care_drafts")
    op.drop_table("care_drafts")
    op.drop_index("ix_care_opt_outs_customer", table_name="care_opt_outs")
    op.drop_table("care_opt_outs")
    with op.batch_alter_table("circles") as batch:
        batch.drop_column("care_route")
