#!/usr/bin/env bash
# Run the test suite: install the venv (scripts/bootstrap.sh), start the private
# Redis/PostgreSQL (scripts/services.sh), export QBO_TEST_* URLs, run pytest.
# Extra arguments go to pytest; default options come from pyproject.toml.
# The suite runs on TEST_WORKERS pytest-xdist workers (default 4: most tests wait on
# sockets and sleeps, so four beat two even on two cores); TEST_WORKERS=0 runs it in
# one process, and an explicit -n in the arguments wins.
# Exit code is pytest's; "no tests collected" (5) is reported as a failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/bootstrap.sh
bash scripts/services.sh start >/dev/null
# The browser tests drive Debian's Chromium (headless, through Playwright).
if ! command -v chromium >/dev/null; then
    echo "[test] installing chromium (one-time)"
    sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
eval "$(bash scripts/services.sh env)"
echo "[test] QBO_TEST_REDIS_URL=$QBO_TEST_REDIS_URL"
echo "[test] QBO_TEST_POSTGRES_URL=$QBO_TEST_POSTGRES_URL"

workers=(-n "${TEST_WORKERS:-4}")
for arg in "$@"; do
    case "$arg" in -n|-n*|--numprocesses*|-p) workers=() ;; esac
done
[ "${TEST_WORKERS:-4}" = 0 ] && workers=()

rc=0
.venv/bin/python -m pytest "${workers[@]}" "$@" || rc=$?

if [ "$rc" -eq 5 ]; then
    echo "[test] ERROR: pytest collected no tests (exit 5); refusing to pass." >&2
fi
exit "$rc"
