#!/usr/bin/env bash
# Runs the linter, the format check and the whole test suite (installs what it needs first).
# Extra arguments go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$ROOT"
# Headless Chromium from Debian's packages, for the HTML report's browser test
# (tests/test_store_report.py; skipped without it): installed once, quietly, when missing.
if ! command -v chromium-headless-shell >/dev/null && ! command -v chromium >/dev/null \
    && command -v apt-get >/dev/null; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo -n"; fi
    echo "[spinfits] installing chromium-headless-shell (Debian) for the report's browser test"
    install_chromium() {
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            chromium-headless-shell >>/tmp/spinfits-apt.log 2>&1
    }
    install_chromium || { $SUDO apt-get update -qq >>/tmp/spinfits-apt.log 2>&1 && install_chromium; } \
        || echo "[spinfits] could not install chromium-headless-shell (see /tmp/spinfits-apt.log);" \
            "the browser test will be skipped"
fi
ruff check --quiet .
ruff format --check --quiet .
exec python -m pytest "$@"
