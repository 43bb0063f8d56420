#!/usr/bin/env bash
# Runs the linter, the format check and the whole test suite (installs what it needs first).
# Extra arguments go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$ROOT"
ruff check --quiet .
ruff format --check --quiet .
exec python -m pytest "$@"
