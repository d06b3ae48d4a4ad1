#!/usr/bin/env bash
# Install Reagenda with its test dependencies into ./.venv and run the whole test suite.
# Tests run against PostgreSQL (TEST_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/test) and Redis
# (TEST_REDIS_URL, default redis://127.0.0.1:6379/15) when they are reachable, and always against SQLite + the
# embedded Redis. With CI=true a test that would skip for a missing part fails instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import reagenda, pytest" 2>/dev/null || [ pyproject.toml -nt .venv/.installed-test ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
  touch .venv/.installed-test
fi
# Browser tests drive Debian's Chromium; install it when we can (root with apt), as CI does.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; browser tests will skip (and fail under CI=true)" >&2
fi
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "error: pytest collected no tests; that is a failure, not a pass" >&2
  exit 1
fi
exit "$status"
