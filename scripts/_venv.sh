# Sourced by the README's commands: makes .venv (once) and keeps it in step with pyproject.toml.
# torch 2.13.0 is installed first (the CPU wheel this machine has on disk; a GPU machine
# installs its CUDA build of the same range beforehand), so nothing pulls CUDA builds here.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
    echo "[spinfits] creating $VENV"
    python3 -m venv "$VENV"
fi
STAMP="$VENV/.spinfits-installed"
WANT="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "[spinfits] installing into $VENV (first run takes a few minutes)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[test]" 2>&1 | grep -v "^WARNING: Location" || true
    "$VENV/bin/python" -c "import spinfits, torch, smplx, zarr, icechunk, ray" 
    echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
