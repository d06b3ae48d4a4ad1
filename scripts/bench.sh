#!/usr/bin/env bash
# Run one benchmark from bench/ after installing what the benchmarks need (the test and bench extras) into ./.venv.
#   ./scripts/bench.sh caldav_sync --events 5000
#   ./scripts/bench.sh dispatch
# Benchmarks print a table and, last, one JSON line. They need the same services as the tests where they use them
# (bench/dispatch.py: PostgreSQL and Redis, see its --help).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || [ ! -f "bench/${1%.py}.py" ]; then
  echo "usage: ./scripts/bench.sh NAME [ARGS...]   where NAME is one of:" >&2
  ls bench/*.py | sed 's|bench/||; s|\.py$||' | grep -v '^_' | sed 's/^/  /' >&2
  exit 2
fi
name=${1%.py}
shift
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import reagenda, pytest, vdirsyncer" 2>/dev/null || [ pyproject.toml -nt .venv/.installed-bench ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
  touch .venv/.installed-bench
fi
exec .venv/bin/python "bench/$name.py" "$@"
