"""book of business: customer numbers, sealed personal numbers, family, consent, staff

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sealed(prefix: str) -> list[sa.Column]:
    return [
        sa.Column(f"{prefix}_sealed", sa.Text(), nullable=True),
        sa.Column(f"{prefix}_hash", sa.String(length=64), nullable=True),
        sa.Column(f"{prefix}_masked", sa.String(length=32), nullable=True),
    ]


def _digest() -> sa.Column:
    return sa.Column("import_digest", sa.String(length=64), nullable=True)


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("customer_no", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("gender", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("birth_date", sa.Date(), nullable=True))
        for col in _sealed("phone") + _sealed("id_number"):
            batch.add_column(col)
        batch.add_column(sa.Column("agent_id", sa.String(length=64), nullable=True))
        batch.add_column(_digest())
        batch.create_unique_constraint("uq_customers_customer_no", ["customer_no"])
        batch.create_index("ix_customers_name", ["name"])
        batch.create_index("ix_customers_phone_hash", ["phone_hash"])
        batch.create_index("ix_customers_id_number_hash", ["id_number_hash"])
        batch.create_index("ix_customers_agent_id", ["agent_id"])
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("family_of_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("relation", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("gender", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("birth_date", sa.Date(), nullable=True))
        for col in _sealed("phone"):
            batch.add_column(col)
        batch.add_column(_digest())
        batch.create_foreign_key(
            "fk_members_family_of_id_customers", "customers", ["family_of_id"], ["id"]
        )
        batch.create_index("ix_members_family_of_id", ["family_of_id"])
        batch.create_index("ix_members_phone_hash", ["phone_hash"])
    with op.batch_alter_table("policies") as batch:
        batch.add_column(sa.Column("insured_customer_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("insured_member_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("effective_date", sa.Date(), nullable=True))
        batch.add_column(sa.Column("payment_years", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("kind", sa.String(length=24), nullable=True))
        batch.add_column(sa.Column("survival_benefit_date", sa.Date(), nullable=True))
        batch.add_column(
            sa.Column("survival_benefit_amount", sa.Numeric(14, 2), nullable=True)
        )
        batch.add_column(_digest())
        batch.create_foreign_key(
            "fk_policies_insured_customer_id_customers", "customers",
            ["insured_customer_id"], ["id"],
        )
        batch.create_foreign_key(
            "fk_policies_insured_member_id_members", "members", ["insured_member_id"], ["id"]
        )
    with op.batch_alter_table("claims") as batch:
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))
        batch.add_column(_digest())
    with op.batch_alter_table("circles") as batch:
        batch.add_column(_digest())
    with op.batch_alter_table("users") as batch:
        batch.alter_column("password_hash", existing_type=sa.String(length=256), nullable=True)
        batch.add_column(sa.Column("name", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("team", sa.String(length=64), nullable=True))
        batch.add_column(_digest())
    op.create_table(
        "consents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("holder_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.String(length=64), nullable=False),
        sa.Column("until", sa.Date(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["holder_id"], ["customers.id"], name=op.f("fk_consents_holder_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_consents_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    op.create_index(op.f("ix_consents_holder_id"), "consents", ["holder_id"])
    op.create_index("ix_consents_member_holder", "consents", ["member_id", "holder_id"])
    _authorized_seats_become_consent()


def _authorized_seats_become_consent() -> None:
    """Seats marked `authorized` in core circles were the holder's consent: record it as such."""
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT c.customer_id, cm.member_id FROM circle_members cm "
        "JOIN circles c ON c.id = cm.circle_id "
        "WHERE cm.authorized = :yes AND c.kind = 'core' AND c.customer_id IS NOT NULL "
        "AND cm.role = 'family'"
    ), {"yes": True}).all()
    now = datetime.now(UTC)
    for holder_id, member_id in {(r[0], r[1]) for r in rows}:
        conn.execute(sa.text(
            "INSERT INTO consents (holder_id, member_id, scopes, until, source, granted_at) "
            "VALUES (:h, :m, 'policy', NULL, 'agent', :now)"
        ), {"h": holder_id, "m": member_id, "now": now})


def downgrade() -> None:
    op.drop_index("ix_consents_member_holder", table_name="consents")
    op.drop_index(op.f("ix_consents_holder_id"), table_name="consents")
    op.drop_table("consents")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("import_digest")
        batch.drop_column("team")
        batch.drop_column("name")
    with op.batch_alter_table("circles") as batch:
        batch.drop_column("import_digest")
    with op.batch_alter_table("claims") as batch:
        batch.drop_column("import_digest")
        batch.drop_column("note")
    with op.batch_alter_table("policies") as batch:
        batch.drop_constraint("fk_policies_insured_member_id_members", type_="foreignkey")
        batch.drop_constraint("fk_policies_insured_customer_id_customers", type_="foreignkey")
        for name in ("import_digest", "survival_benefit_amount", "survival_benefit_date", "kind",
                     "payment_years", "effective_date", "insured_member_id",
                     "insured_customer_id"):
            batch.drop_column(name)
    with op.batch_alter_table("members") as batch:
        batch.drop_index("ix_members_phone_hash")
        batch.drop_index("ix_members_family_of_id")
        batch.drop_constraint("fk_members_family_of_id_customers", type_="foreignkey")
        for name in ("import_digest", "phone_masked", "phone_hash", "phone_sealed",
                     "birth_date", "gender", "relation", "family_of_id"):
            batch.drop_column(name)
    with op.batch_alter_table("customers") as batch:
        for ix in ("agent_id", "id_number_hash", "phone_hash", "name"):
            batch.drop_index(f"ix_customers_{ix}")
        batch.drop_constraint("uq_customers_customer_no", type_="unique")
        for name in ("import_digest", "agent_id", "id_number_masked", "id_number_hash",
                     "id_number_sealed", "phone_masked", "phone_hash", "phone_sealed",
                     "birth_date", "gender", "customer_no"):
            batch.drop_column(name)
