"""sync: per-calendar backoff, last error and expansion horizon; what the calendar last said about each
appointment (issue 3)

Revision ID: 0003_sync
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import store.types


revision = "0003_sync"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calendars") as batch:
        batch.add_column(sa.Column("sync_failures", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("next_sync_at", store.types.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("sync_error", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("horizon_end", store.types.UTCDateTime(), nullable=True))
    with op.batch_alter_table("appointments") as batch:
        batch.add_column(sa.Column("calendar_state", sa.String(length=16), nullable=False, server_default="active"))


def downgrade() -> None:
    with op.batch_alter_table("appointments") as batch:
        batch.drop_column("calendar_state")
    with op.batch_alter_table("calendars") as batch:
        for name in ("horizon_end", "sync_error", "next_sync_at", "sync_failures"):
            batch.drop_column(name)
