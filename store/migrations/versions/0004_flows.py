"""workflows: ghosting/closing dates and policy overrides on clients; cancellation, move and attendance facts
on appointments (issue 4)

Revision ID: 0004_flows
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import store.types


revision = "0004_flows"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("ghost_started_at", store.types.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("closed_at", store.types.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("policy_overrides", sa.JSON(), nullable=False, server_default="{}"))
    with op.batch_alter_table("appointments") as batch:
        batch.add_column(sa.Column("confirmed_at", store.types.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("cancelled_at", store.types.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("cancelled_by", sa.String(length=16), nullable=False, server_default=""))
        batch.add_column(sa.Column("late_cancel", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("move_count", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("late_move_count", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("attendance_at", store.types.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("appointments") as batch:
        for name in ("attendance_at", "late_move_count", "move_count", "late_cancel", "cancelled_by",
                     "cancelled_at", "confirmed_at"):
            batch.drop_column(name)
    with op.batch_alter_table("clients") as batch:
        for name in ("policy_overrides", "closed_at", "ghost_started_at"):
            batch.drop_column(name)
