"""booking: appointment types, booking settings (public slug, bookable hours), slot holds (issue 7)

Revision ID: 0007_booking
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import store.types


revision = "0007_booking"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "appointment_types",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("buffer_before_minutes", sa.Integer(), nullable=False),
        sa.Column("buffer_after_minutes", sa.Integer(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("meeting", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", store.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["owners.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner_id", "slug"),
    )
    with op.batch_alter_table("appointment_types") as batch:
        batch.create_index(batch.f("ix_appointment_types_owner_id"), ["owner_id"], unique=False)
    op.create_table(
        "booking_settings",
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("meeting_link", sa.Text(), nullable=False),
        sa.Column("updated_at", store.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["owners.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("owner_id"),
        sa.UniqueConstraint("slug"),
    )
    op.create_table(
        "slot_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", store.types.UTCDateTime(), nullable=False),
        sa.Column("ends_at", store.types.UTCDateTime(), nullable=False),
        sa.Column("expires_at", store.types.UTCDateTime(), nullable=False),
        sa.Column("created_at", store.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["owners.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner_id", "starts_at"),
    )
    with op.batch_alter_table("slot_holds") as batch:
        batch.create_index(batch.f("ix_slot_holds_owner_id"), ["owner_id"], unique=False)


def downgrade() -> None:
    op.drop_table("slot_holds")
    op.drop_table("booking_settings")
    op.drop_table("appointment_types")
