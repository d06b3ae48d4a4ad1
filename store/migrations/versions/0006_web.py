"""web: owner preferences (working hours, sender identity, channels, message texts) (issue 6)

Revision ID: 0006_web
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = "0006_web"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("owners") as batch:
        batch.add_column(sa.Column("preferences", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("owners") as batch:
        batch.drop_column("preferences")
