"""steps.job_id: the RQ job that carries a step (the dispatcher puts several steps in one job)

Revision ID: 0008_step_job
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = "0008_step_job"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("steps") as batch:
        batch.add_column(sa.Column("job_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("steps") as batch:
        batch.drop_column("job_id")
