#!/usr/bin/env bash
# The main job on the embedded default (installs what it needs first):
# stand-in body model -> synthetic dataset in SPIN's layout (with rendered crops) -> precompute on
# local Ray into a local store -> SPIN training on Ray Train with the store in the loop -> evaluation,
# fits drawn over their images and the store's HTML report.
# Rerunning resumes (and, once complete, says there is nothing to do).
# Usage: bash scripts/demo.sh [OUTPUT_DIR]   (default: out/demo)
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$ROOT"
OUT="${1:-out/demo}"
mkdir -p "$OUT"

echo "== 1. stand-in body model (SMPL's file formats; NOT the licensed SMPL model)"
spinfits model make-standin "$OUT/model" --overwrite
spinfits model preview "$OUT/model" "$OUT/body_model.png"

echo "== 2. synthetic dataset in SPIN's npz layout (ground truth kept in the file)"
if [ ! -f "$OUT/images/synthetic/0001999.png" ]; then
    spinfits data make-synthetic "$OUT/synthetic.npz" --n 2000 --model-dir "$OUT/model" \
        --images "$OUT/images"
fi
spinfits data info "$OUT/synthetic.npz"

echo "== 3. the learned initialiser: keypoints -> SMPL network, trained on synthetic people (once)"
if [ ! -f "$OUT/model/keypoint_regressor.pt" ]; then
    spinfits init train-regressor --model-dir "$OUT/model"
fi

echo "== 4. precompute: fit every person on local Ray into a local versioned store"
spinfits precompute --dataset "$OUT/synthetic.npz" --store "$OUT/store" --model-dir "$OUT/model" \
    --shard-size 128 --report "$OUT/precompute_report.png"

echo "== 5. SPIN training on Ray Train (2 CPU workers, small backbone): SMPLify in the loop"
echo "      improves the store's fits; checkpoints record the store snapshot they saw"
RESUME=""
if [ -d "$OUT/runs/demo" ]; then RESUME="--resume"; fi
spinfits train --dataset "$OUT/synthetic.npz" "$OUT/images" --store "$OUT/store" \
    --model-dir "$OUT/model" --runs-dir "$OUT/runs" --run demo $RESUME \
    --workers 2 --loader-workers 1 --steps 300 --batch 8 --backbone small --input-res 112 --lr 3e-4 \
    --ignore-gt-smpl --images-every 50 --report "$OUT/training_report.png"

echo "== 6. the store's history (precompute, then training's commits)"
spinfits store log "$OUT/store" --limit 8

echo "== 7. evaluation: the trained regressor (SPIN's protocols) and the fits dictionary itself"
spinfits eval --checkpoint "$OUT/runs/demo" --dataset "$OUT/synthetic.npz" --images "$OUT/images" \
    --model-dir "$OUT/model" --json "$OUT/eval.json"
STATIC=$(spinfits store log "$OUT/store" --limit 1000 | awk '/precompute/ && !id {id = $1} END {print id}')  # the static fits
spinfits store eval "$OUT/store" synthetic --npz "$OUT/synthetic.npz" --model-dir "$OUT/model" \
    ${STATIC:+--version "$STATIC"} --version main

echo "== 8. looking at fits: stored fits over their images, and the store's HTML report"
spinfits store show "$OUT/store" synthetic --npz "$OUT/synthetic.npz" --images "$OUT/images" \
    --model-dir "$OUT/model" --out "$OUT/show" --rows 0-3 --side
spinfits store report "$OUT/store" --out "$OUT/report.html" --npz "synthetic=$OUT/synthetic.npz" \
    --images-root "synthetic=$OUT/images" --model-dir "$OUT/model"
SPIN_EXAMPLE="$ROOT/../shared/data/im1010.jpg"
if [ -f "$SPIN_EXAMPLE" ]; then  # SPIN's own demo image, where the development setup has it
    spinfits demo --image "$SPIN_EXAMPLE" --openpose "${SPIN_EXAMPLE%.jpg}_openpose.json" \
        --checkpoint "$OUT/runs/demo" --model-dir "$OUT/model" --refine --out "$OUT/im1010"
fi

echo "== done: outputs in $OUT"
echo "   body_model.png          the stand-in body and its joints"
echo "   precompute_report.png   loss histogram and fits/s over the run"
echo "   training_report.png     training loss and the store's fits improved by training"
echo "   runs/demo/              config.json, Ray Train checkpoints, progress/rank*.jsonl, tensorboard/"
echo "   eval.json               the regressor's MPJPE / PA-MPJPE / PCK on the dataset"
echo "   show/                   stored fits drawn over their images (front and side)"
echo "   report.html             the store's report: open it in a browser"
echo "   store/                  the fits: spinfits store info|log|diff|export $OUT/store ..."
