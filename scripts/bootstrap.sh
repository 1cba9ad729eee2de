#!/usr/bin/env bash
# Create/refresh the project virtualenv at .venv and install the package with
# its dev extra. Idempotent: the install is skipped while
# .venv/.installed-<sha256 of pyproject.toml> exists.
#
# Works on a fresh Debian 12 as root: when `python3 -m venv` cannot create a
# venv with pip (Debian ships ensurepip separately), python3-venv is installed
# with apt-get.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PY=${PYTHON:-python3}

log() { printf '[bootstrap] %s\n' "$*"; }
die() { printf '[bootstrap] ERROR: %s\n' "$*" >&2; exit 1; }

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

# Serialize concurrent bootstraps (e.g. two `make test` at once).
mkdir -p "$ROOT/.run"
exec 9>"$ROOT/.run/bootstrap.lock"
flock -w 900 9 || die "timed out waiting for another bootstrap to finish"

command -v "$PY" >/dev/null || die "$PY not found; install Python 3.11+"

APT_UPDATED=0
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo -n "$@"
    else die "need root to run: $* (install it manually)"; fi
}
apt_install() {
    command -v apt-get >/dev/null || die "apt-get not available; install manually: $*"
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

venv_ok() { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; }

if ! venv_ok; then
    if [ -e "$VENV" ]; then
        log "removing broken $VENV"
        rm -rf "$VENV"
    fi
    log "creating $VENV ($("$PY" --version 2>&1))"
    if ! "$PY" -m venv "$VENV" >/dev/null 2>&1 || ! venv_ok; then
        rm -rf "$VENV"
        # Debian/Ubuntu ship ensurepip separately, in python3-venv.
        apt_install python3-venv
        "$PY" -m venv "$VENV" || die "could not create $VENV"
        venv_ok || die "$VENV has no working pip"
    fi
fi

STAMP=$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-64)
if [ -e "$STAMP" ]; then
    log "dependencies up to date ($(basename "$STAMP" | cut -c1-23)...)"
    exit 0
fi

# pip/setuptools chatter (build-backend warnings) goes to a log, shown on failure.
PIPLOG=$VENV/pip-install.log
pip_q() {
    "$VENV/bin/python" -m pip install -q "$@" >>"$PIPLOG" 2>&1 \
        || { tail -n 40 "$PIPLOG" >&2; die "pip install $* failed (full log: $PIPLOG)"; }
}
: >"$PIPLOG"
log "upgrading pip"
pip_q --upgrade pip
log "installing -e '.[dev]' (this can take a minute; log: .venv/pip-install.log)"
pip_q -e '.[dev]'
rm -f "$VENV"/.installed-*
touch "$STAMP"
log "done"
