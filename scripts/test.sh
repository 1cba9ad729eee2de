#!/usr/bin/env bash
# Run the test suite: install the venv (scripts/bootstrap.sh), start the private
# Redis/PostgreSQL (scripts/services.sh), export QBO_TEST_* URLs, run pytest.
# Extra arguments go to pytest; default options come from pyproject.toml.
# Exit code is pytest's; "no tests collected" (5) is reported as a failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/bootstrap.sh
bash scripts/services.sh start >/dev/null
eval "$(bash scripts/services.sh env)"
echo "[test] QBO_TEST_REDIS_URL=$QBO_TEST_REDIS_URL"
echo "[test] QBO_TEST_POSTGRES_URL=$QBO_TEST_POSTGRES_URL"

rc=0
.venv/bin/python -m pytest "$@" || rc=$?

if [ "$rc" -eq 5 ]; then
    echo "[test] ERROR: pytest collected no tests (exit 5); refusing to pass." >&2
fi
exit "$rc"
