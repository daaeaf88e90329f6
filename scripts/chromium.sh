#!/usr/bin/env bash
# The headless browser of the agent-desktop test (tests/api/test_desktop_browser.py) and the
# report test (tests/flows/app/test_report.py):
# Debian's chromium, installed when missing. Usage: bash scripts/chromium.sh install
set -euo pipefail
# shellcheck source=scripts/lib.sh
log() { echo "chromium: $*" >&2; }
die() { echo "chromium: error: $*" >&2; exit 1; }
HOST=127.0.0.1
. "$(dirname "$0")/lib.sh"

case "${1:-install}" in
    install)
        if ! command -v chromium >/dev/null 2>&1; then
            apt_install chromium
        fi
        command -v chromium >/dev/null 2>&1 || die "chromium is still missing after apt-get install"
        log "chromium: $(chromium --version 2>/dev/null | head -1)"
        ;;
    *) die "usage: $0 install" ;;
esac
