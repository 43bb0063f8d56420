#!/usr/bin/env bash
# The main job on the embedded default (installs what it needs first):
# stand-in body model -> synthetic dataset in SPIN's layout -> pictures and summaries.
# Usage: bash scripts/demo.sh [OUTPUT_DIR]   (default: out/demo)
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$ROOT"
OUT="${1:-out/demo}"
mkdir -p "$OUT"

echo "== 1. stand-in body model (SMPL's file formats; NOT the licensed SMPL model)"
spinfits model make-standin "$OUT/model" --overwrite
spinfits model preview "$OUT/model" "$OUT/body_model.png"

echo "== 2. synthetic dataset in SPIN's npz layout (ground truth kept in the file)"
spinfits data make-synthetic "$OUT/synthetic.npz" --n 2000 --model-dir "$OUT/model"
spinfits data info "$OUT/synthetic.npz"

echo "== done: outputs in $OUT (body_model.png shows the stand-in body and its joints)"
