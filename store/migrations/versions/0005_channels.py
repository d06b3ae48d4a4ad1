"""channels: the address status of a client's email and a log of inbound mail/provider events (issue 5)

Revision ID: 0005_channels
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import store.types


revision = "0005_channels"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("email_status", sa.String(length=16), nullable=False, server_default="ok"))
    op.create_table(
        "inbound_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source", sa.String(length=24), nullable=False),
        sa.Column("dedup_key", sa.String(length=300), nullable=False, unique=True),
        sa.Column("owner_id", sa.Integer(), sa.ForeignKey("owners.id", ondelete="CASCADE"), nullable=True),
        sa.Column("client_id", sa.Integer(), sa.ForeignKey("clients.id", ondelete="SET NULL"), nullable=True),
        sa.Column("reply_id", sa.Integer(), sa.ForeignKey("replies.id", ondelete="SET NULL"), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("received_at", store.types.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_inbound_events_owner_id", "inbound_events", ["owner_id"])


def downgrade() -> None:
    op.drop_index("ix_inbound_events_owner_id", table_name="inbound_events")
    op.drop_table("inbound_events")
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("email_status")
