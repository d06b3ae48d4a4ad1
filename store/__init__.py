"""The database: SQLAlchemy 2 models (``store.models``), engine and session helpers (``store.db``) and Alembic
migrations (``store/migrations``). The database is Reagenda's source of truth; Redis only carries work due now.

To add a table: declare it in ``store/models.py`` (or a module imported there), then write a migration with
``alembic -c store/alembic.ini revision --autogenerate -m "what"`` and check it on SQLite and PostgreSQL
(``tests/test_migrations.py`` fails when models and migrations disagree).
"""
