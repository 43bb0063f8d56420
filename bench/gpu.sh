#!/usr/bin/env bash
# The engine and precompute on CUDA vs SPIN's SMPLify loop (this project's re-implementation of it) and,
# with --spin-repo, SPIN's own smplify/smplify.py on the same GPU, over batch sizes 66 to 4096, with the
# ratio table (bench/precompute_gpu.py says what is measured; bench/spin_smplify.py how SPIN's code runs).
#
#   bash bench/gpu.sh --spin-repo ~/SPIN      # CUDA, SPIN's own code from a checkout of
#                                             #   github.com/nkolot/SPIN (not part of this project)
#   bash bench/gpu.sh                         # CUDA without SPIN's own code; extra flags go to
#                                             #   precompute_gpu.py, e.g.
#   bash bench/gpu.sh --compile               #   also the engine under torch.compile
#   bash bench/gpu.sh --slots 4096            #   the engine at other solver slots than the CLI's 256
#   bash bench/gpu.sh --device cpu --batch-sizes 12 --repeats 1   # the same path on the CPU, tiny
#
# Needs the project's virtual environment (.venv, or PYTHON=/path/to/python) with a CUDA build of
# torch. Fails with exit status 2 and a message when there is no CUDA device, or when --spin-repo is
# not a checkout of SPIN (the message names the missing file) or its code does not import.
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(command -v "${PYTHON:-.venv/bin/python}" || true)"
if [ -z "$python" ]; then
    echo "bench/gpu.sh: error: no Python at ${PYTHON:-.venv/bin/python}; run scripts/demo.sh once" \
        "(it creates .venv) or set PYTHON" >&2
    exit 2
fi
case "$python" in /*) ;; *) python="$PWD/$python" ;; esac
device=cuda
previous=""
for argument in "$@"; do
    if [ "$previous" = "--device" ]; then device="$argument"; fi
    case "$argument" in --device=*) device="${argument#--device=}" ;; esac
    previous="$argument"
done
if [ "${device%%:*}" = "cuda" ]; then
    if ! "$python" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        echo "bench/gpu.sh: error: torch sees no CUDA device (torch.cuda.is_available() is False):" \
            "run it on a GPU machine with a CUDA build of torch, or pass --device cpu --quick" >&2
        exit 2
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
fi
cd bench
if [ "${device%%:*}" = "cuda" ]; then
    exec "$python" precompute_gpu.py --device "$device" "$@"
fi
exec "$python" precompute_gpu.py "$@"
