"""push channels: Google events.watch channels and Microsoft Graph subscriptions per calendar (issue 3)

Revision ID: 0003_push
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import store.types


revision = "0003_push"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "push_channels",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("calendar_id", sa.Integer(), sa.ForeignKey("calendars.id", ondelete="CASCADE"), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=200), nullable=False, unique=True),
        sa.Column("resource_id", sa.String(length=1000), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("callback_url", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("expires_at", store.types.UTCDateTime(), nullable=False),
        sa.Column("last_notified_at", store.types.UTCDateTime(), nullable=True),
        sa.Column("created_at", store.types.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_push_channels_calendar_id", "push_channels", ["calendar_id"])


def downgrade() -> None:
    op.drop_index("ix_push_channels_calendar_id", table_name="push_channels")
    op.drop_table("push_channels")
