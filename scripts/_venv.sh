# Sourced by the README's commands: makes .venv (once) and keeps it in step with pyproject.toml.
# torch 2.13.0 is installed first (the CPU wheel this machine has on disk; a GPU machine
# installs its CUDA build of the same range beforehand), so nothing pulls CUDA builds here.
# On a GPU machine: `bash scripts/_venv.sh --cuda cu128` (the CUDA tag of torch's wheel index that
# matches the node's driver) installs torch's CUDA build instead and checks that it sees a GPU.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
    echo "[spinfits] creating $VENV"
    python3 -m venv "$VENV"
fi
TORCH_INDEX=""
if [ "${1:-}" = "--cuda" ]; then
    TORCH_INDEX="https://download.pytorch.org/whl/${2:?--cuda needs the CUDA tag of the torch wheel index, e.g. cu128}"
fi
STAMP="$VENV/.spinfits-installed"
WANT="$( (cat "$ROOT/pyproject.toml"; echo "$TORCH_INDEX") | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "[spinfits] installing into $VENV (first run takes a few minutes)"
    if [ -n "$TORCH_INDEX" ]; then
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall \
            "torch==2.13.0" --index-url "$TORCH_INDEX"
        "$VENV/bin/python" -c "import sys, torch; ok = torch.version.cuda is not None; print('[spinfits] torch', torch.__version__, 'CUDA', torch.version.cuda, 'GPU visible:', ok and torch.cuda.is_available()); sys.exit(0 if ok else 1)"
    else
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[test]" 2>&1 | grep -v "^WARNING: Location" || true
    "$VENV/bin/python" -c "import spinfits, torch, smplx, zarr, icechunk, ray" 
    echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
