#!/usr/bin/env bash
# Debian's Chromium and chromedriver for the browser tests (`pytest -m browser`): installed
# with apt-get only when missing, non-interactively. Playwright drives /usr/bin/chromium
# through `executable_path`; no browser is ever downloaded (the network is closed).
set -uo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "ensure_chromium: chromium/chromium-driver missing and not root (no passwordless sudo): install them with apt-get" >&2
        exit 1
    fi
fi

LOG="$(mktemp -t ensure-chromium.XXXXXX.log)"
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver; } >"$LOG" 2>&1; then
    echo "ensure_chromium: apt-get could not install chromium and chromium-driver (log: $LOG)" >&2
    exit 1
fi
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "ensure_chromium: chromium or chromedriver still missing after apt-get install (log: $LOG)" >&2
    exit 1
fi
rm -f "$LOG"
