"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op



revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('channel_cursors',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_channel_cursors')),
    sa.UniqueConstraint('channel', 'key', name=op.f('uq_channel_cursors_channel_key'))
    )
    op.create_table('customers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('honorific', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers'))
    )
    op.create_table('members',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('supervisor_id', sa.String(length=64), nullable=True),
    sa.Column('is_bot', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_members_customer_id_customers')),
    sa.ForeignKeyConstraint(['supervisor_id'], ['members.id'], name=op.f('fk_members_supervisor_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_members'))
    )
    op.create_table('policies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('policy_no', sa.String(length=40), nullable=False),
    sa.Column('product', sa.String(length=128), nullable=False),
    sa.Column('holder_id', sa.Integer(), nullable=False),
    sa.Column('insured_name', sa.String(length=64), nullable=False),
    sa.Column('sum_assured', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('premium', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('premium_frequency', sa.String(length=16), nullable=False),
    sa.Column('next_due_date', sa.Date(), nullable=True),
    sa.Column('status', sa.String(length=18), nullable=False),
    sa.Column('cash_value', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('cash_value_date', sa.Date(), nullable=True),
    sa.Column('beneficiaries', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['holder_id'], ['customers.id'], name=op.f('fk_policies_holder_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_policies')),
    sa.UniqueConstraint('policy_no', name=op.f('uq_policies_policy_no'))
    )
    with op.batch_alter_table('policies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_policies_holder_id'), ['holder_id'], unique=False)

    op.create_table('circles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('chat_id', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=15), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=17), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('agent_id', sa.String(length=64), nullable=True),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('dissolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['agent_id'], ['members.id'], name=op.f('fk_circles_agent_id_members')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_circles_customer_id_customers')),
    sa.ForeignKeyConstraint(['parent_id'], ['circles.id'], name=op.f('fk_circles_parent_id_circles')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_circles')),
    sa.UniqueConstraint('chat_id', name=op.f('uq_circles_chat_id'))
    )
    op.create_table('claims',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('claim_no', sa.String(length=40), nullable=False),
    sa.Column('policy_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=22), nullable=False),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['policy_id'], ['policies.id'], name=op.f('fk_claims_policy_id_policies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_claims')),
    sa.UniqueConstraint('claim_no', name=op.f('uq_claims_claim_no'))
    )
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_claims_policy_id'), ['policy_id'], unique=False)

    op.create_table('member_identities',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('channel_user_id', sa.String(length=128), nullable=False),
    sa.Column('member_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_identities_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_identities')),
    sa.UniqueConstraint('channel', 'channel_user_id', name=op.f('uq_member_identities_channel_channel_user_id'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=256), nullable=False),
    sa.Column('role', sa.String(length=18), nullable=False),
    sa.Column('member_id', sa.String(length=64), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_users_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=48), nullable=False),
    sa.Column('actor_id', sa.String(length=64), nullable=True),
    sa.Column('circle_id', sa.Integer(), nullable=True),
    sa.Column('subject', sa.String(length=128), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['circle_id'], ['circles.id'], name=op.f('fk_audit_events_circle_id_circles')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_kind'), ['kind'], unique=False)

    op.create_table('circle_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('circle_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=18), nullable=False),
    sa.Column('authorized', sa.Boolean(), nullable=False),
    sa.Column('joined_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['circle_id'], ['circles.id'], name=op.f('fk_circle_members_circle_id_circles')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_circle_members_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_circle_members')),
    sa.UniqueConstraint('circle_id', 'member_id', name=op.f('uq_circle_members_circle_id_member_id'))
    )
    op.create_table('messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('circle_id', sa.Integer(), nullable=True),
    sa.Column('direction', sa.String(length=11), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('channel_msg_id', sa.String(length=128), nullable=True),
    sa.Column('sender_id', sa.String(length=64), nullable=True),
    sa.Column('sender_name', sa.String(length=64), nullable=True),
    sa.Column('recipient_id', sa.String(length=64), nullable=True),
    sa.Column('reply_to_id', sa.Integer(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('intent', sa.String(length=64), nullable=True),
    sa.Column('confidence', sa.Double(), nullable=True),
    sa.Column('script_id', sa.String(length=96), nullable=True),
    sa.Column('script_version', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=256), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['circle_id'], ['circles.id'], name=op.f('fk_messages_circle_id_circles')),
    sa.ForeignKeyConstraint(['recipient_id'], ['members.id'], name=op.f('fk_messages_recipient_id_members')),
    sa.ForeignKeyConstraint(['reply_to_id'], ['messages.id'], name=op.f('fk_messages_reply_to_id_messages')),
    sa.ForeignKeyConstraint(['sender_id'], ['members.id'], name=op.f('fk_messages_sender_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messages')),
    sa.UniqueConstraint('channel', 'channel_msg_id', name=op.f('uq_messages_channel_channel_msg_id'))
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_circle_created', ['circle_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_messages_reply_to_id'), ['reply_to_id'], unique=False)
        batch_op.create_index('ix_messages_status_next', ['status', 'next_attempt_at'], unique=False)

    op.create_table('tickets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('circle_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.String(length=64), nullable=True),
    sa.Column('source_message_id', sa.Integer(), nullable=True),
    sa.Column('intent', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('priority', sa.String(length=14), nullable=False),
    sa.Column('assignee_id', sa.String(length=64), nullable=True),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('context', sa.JSON(), nullable=False),
    sa.Column('first_response_due', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolve_due', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_response_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assignee_id'], ['members.id'], name=op.f('fk_tickets_assignee_id_members')),
    sa.ForeignKeyConstraint(['circle_id'], ['circles.id'], name=op.f('fk_tickets_circle_id_circles')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_tickets_member_id_members')),
    sa.ForeignKeyConstraint(['source_message_id'], ['messages.id'], name=op.f('fk_tickets_source_message_id_messages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets'))
    )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tickets_circle_id'), ['circle_id'], unique=False)
        batch_op.create_index('ix_tickets_status_priority', ['status', 'priority'], unique=False)

    op.create_table('followups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=160), nullable=False),
    sa.Column('kind', sa.String(length=15), nullable=False),
    sa.Column('circle_id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('recipient_id', sa.String(length=64), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=21), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=256), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['circle_id'], ['circles.id'], name=op.f('fk_followups_circle_id_circles')),
    sa.ForeignKeyConstraint(['recipient_id'], ['members.id'], name=op.f('fk_followups_recipient_id_members')),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_followups_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_followups')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_followups_dedupe_key'))
    )
    with op.batch_alter_table('followups', schema=None) as batch_op:
        batch_op.create_index('ix_followups_status_due', ['status', 'due_at'], unique=False)

    op.create_table('ticket_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('actor_id', sa.String(length=64), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_ticket_events_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket_events'))
    )
    with op.batch_alter_table('ticket_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_events_ticket_id'), ['ticket_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('ticket_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_events_ticket_id'))

    op.drop_table('ticket_events')
    with op.batch_alter_table('followups', schema=None) as batch_op:
        batch_op.drop_index('ix_followups_status_due')

    op.drop_table('followups')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_status_priority')
        batch_op.drop_index(batch_op.f('ix_tickets_circle_id'))

    op.drop_table('tickets')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_status_next')
        batch_op.drop_index(batch_op.f('ix_messages_reply_to_id'))
        batch_op.drop_index('ix_messages_circle_created')

    op.drop_table('messages')
    op.drop_table('circle_members')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_kind'))

    op.drop_table('audit_events')
    op.drop_table('users')
    op.drop_table('member_identities')
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_claims_policy_id'))

    op.drop_table('claims')
    op.drop_table('circles')
    with op.batch_alter_table('policies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_policies_holder_id'))

    op.drop_table('policies')
    op.drop_table('members')
    op.drop_table('customers')
    op.drop_table('channel_cursors')
