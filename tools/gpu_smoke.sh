#!/usr/bin/env bash
# GPU smoke test, for a fresh machine with one NVIDIA GPU, a driver and only the package
# registries. Budget: 8 minutes. It
#   1. makes its own venv: torch's CPU build (exports only), then edgecnn[tensorrt,export] (onnxruntime-gpu with
#      its CUDA/cuDNN wheels + TensorRT 10), falling back to edgecnn[gpu,export] when TensorRT cannot install;
#   2. exports ResNet-34 and ResNet-50 (fp32, fp16 and the int8 QDQ file, cached);
#   3. runs `edgecnn bench --per-layer` on cuda (fp32, fp16) and tensorrt (fp32, fp16, int8) at batch 1 and 8,
#      TensorRT twice (the second run must reuse the engine cache; build time is reported apart);
#   4. prints one table (tools/gpu_report.py) with the GPU's name, writes it to $RESULTS_DIR/gpu-smoke.md (and
#      .json), and fails if any run fell back to another provider or left a node on the CPU.
#   VENV=.venv-gpu OUT=artifacts/gpu_smoke ITERS=30 MODELS="resnet34 resnet50" RESULTS_DIR=docs/results \
#     bash tools/gpu_smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-gpu}
OUT=${OUT:-artifacts/gpu_smoke}
ITERS=${ITERS:-30}
MODELS=${MODELS:-resnet34 resnet50}
RESULTS_DIR=${RESULTS_DIR:-docs/results}
export EDGECNN_CACHE_DIR=${EDGECNN_CACHE_DIR:-$OUT/cache}   # exports and TensorRT engines for this test only
start=$SECONDS
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1)
echo "gpu smoke: $gpu" >&2
python3 -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@" --disable-pip-version-check -q; }
pip install --upgrade pip
pip install torch --index-url https://download.pytorch.org/whl/cpu
if pip install -e ".[tensorrt,export]"; then providers="cuda tensorrt"; else
  echo "gpu smoke: edgecnn[tensorrt] did not install (TensorRT comes from NVIDIA's index); CUDA only" >&2
  pip install -e ".[gpu,export]"; providers="cuda"
fi
edgecnn() { "$VENV/bin/edgecnn" "$@"; }
edgecnn doctor
mkdir -p "$OUT"
rm -f "$OUT"/*.json
for model in $MODELS; do
  for provider in $providers; do
    precisions="fp32 fp16"; runs=1
    if [ "$provider" = tensorrt ]; then precisions="fp32 fp16 int8"; runs=2; fi
    for precision in $precisions; do
      for run in $(seq 1 $runs); do
        echo "gpu smoke: $model $provider $precision run $run ($((SECONDS - start)) s)" >&2
        edgecnn bench "$model" --provider "$provider" --precision "$precision" --batch 1,8 --iters "$ITERS" \
          --per-layer --json > "$OUT/$model-$provider-$precision-run$run.json"
      done
    done
  done
done
# the table, with the GPU, CPU and versions, also goes to $RESULTS_DIR/gpu-smoke.md (tools/results.py)
"$VENV/bin/python" tools/gpu_report.py --gpu "$gpu" --results-dir "$RESULTS_DIR" \
  --command "MODELS='$MODELS' ITERS=$ITERS bash tools/gpu_smoke.sh" "$OUT"/*.json | tee "$OUT/table.md"
echo "gpu smoke: done in $((SECONDS - start)) s" >&2
