#!/usr/bin/env bash
# The main job on the embedded default (installs what it needs first):
# stand-in body model -> synthetic dataset in SPIN's layout -> precompute on local Ray into a
# local store -> report. Rerunning resumes (and, once complete, says there is nothing to do).
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

echo "== 3. the learned initialiser: keypoints -> SMPL network, trained on synthetic people (once)"
if [ ! -f "$OUT/model/keypoint_regressor.pt" ]; then
    spinfits init train-regressor --model-dir "$OUT/model"
fi

echo "== 4. precompute: fit every person on local Ray into a local versioned store"
spinfits precompute --dataset "$OUT/synthetic.npz" --store "$OUT/store" --model-dir "$OUT/model" \
    --batch 128 --report "$OUT/precompute_report.png"

echo "== 5. the store's history"
spinfits store log "$OUT/store"

echo "== done: outputs in $OUT"
echo "   body_model.png          the stand-in body and its joints"
echo "   precompute_report.png   loss histogram and fits/s over the run"
echo "   store/                  the fits: spinfits store info|log|diff|export $OUT/store ..."
