#!/usr/bin/env bash
# Debian's chromium for the report test (tests/flows/app/test_report.py renders the HTML
# report in it, headless): `bash scripts/chromium.sh install` installs it when missing.
set -euo pipefail
HOST=127.0.0.1
log() { echo "chromium.sh: $*" >&2; }
die() { log "$*"; exit 1; }
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

case "${1:-install}" in
    install)
        if ! command -v chromium >/dev/null 2>&1; then
            apt_install chromium
        fi
        command -v chromium >/dev/null 2>&1 || die "chromium is still missing after apt-get install"
        log "$(chromium --version 2>/dev/null || echo chromium)"
        ;;
    *) die "usage: bash scripts/chromium.sh install" ;;
esac
