"""messages: leave room on each page (fillfactor 70) on PostgreSQL

A message row is inserted, then updated once when the provider accepts it (``sending`` → ``sent``: columns no index
covers). With free room on the row's page that update is HOT: no new entry in any of the table's five indexes and
less WAL. Packed pages (fillfactor 100, the default) made about 40% of those updates write every index
(``bench/dispatch.py``, ``pg_stat_user_tables.n_tup_hot_upd``). Existing pages keep their layout until rewritten.

Revision ID: 0009_messages_fillfactor
Revises: 0001
"""
from alembic import op


revision = "0009_messages_fillfactor"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE messages SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE messages RESET (fillfactor)")
