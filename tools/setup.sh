#!/usr/bin/env bash
# Set up .venv for edgecnn development: torch's CPU build FIRST (so nothing pulls a multi-GB CUDA build),
# then edgecnn itself, editable, with ONNX Runtime's CPU build and OpenVINO ([cpu,openvino], so CI runs both
# runtimes) and the export, plot, dev, ray and triton extras. Idempotent: a second run is a no-op
# unless pyproject.toml or this script changed.
# torchvision (the [export] extra's pin, the pair of that torch) is installed right after torch, from the same index
# and with --no-deps, so its torch==2.13.0 requirement never pulls a CUDA torch.
#   PYTHON=python3.11 VENV=.venv TORCH_SPEC="torch==2.13.0" TORCHVISION_SPEC="torchvision==0.28.0"
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
#   TORCH_INDEX_TIMEOUT=5   (seconds to wait for PyTorch's CPU index before falling back to the default index)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
TORCHVISION_SPEC=${TORCHVISION_SPEC:-torchvision==0.28.0}
EXTRAS=cpu,openvino,export,plot,dev,ray,triton
stamp="$VENV/.edgecnn-setup"
want="$(cat pyproject.toml tools/setup.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/edgecnn" ]; then
  exit 0
fi
echo "edgecnn setup: creating $VENV (torch CPU build first, then edgecnn[$EXTRAS])" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@" --disable-pip-version-check -q; }
pip install --upgrade pip
# torch: never a CUDA build by accident. An explicit TORCH_INDEX_URL wins; else PyTorch's CPU wheel index when it
# answers within a few seconds; else the default index (where a machine with ordinary PyPI access gets the CUDA
# build on Linux x86-64: the line below says so, and TORCH_INDEX_URL chooses).
CPU_INDEX=https://download.pytorch.org/whl/cpu
index_up() {
  "$VENV/bin/python" - "$1" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=float(__import__("os").environ.get("TORCH_INDEX_TIMEOUT", "5")))
PY
}
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  echo "edgecnn setup: torch from TORCH_INDEX_URL=$TORCH_INDEX_URL" >&2
  pip install "$TORCH_SPEC" --index-url "$TORCH_INDEX_URL"
  pip install --no-deps "$TORCHVISION_SPEC" --index-url "$TORCH_INDEX_URL"
elif index_up "$CPU_INDEX"; then
  echo "edgecnn setup: torch from PyTorch's CPU wheel index ($CPU_INDEX)" >&2
  pip install "$TORCH_SPEC" --index-url "$CPU_INDEX"
  pip install --no-deps "$TORCHVISION_SPEC" --index-url "$CPU_INDEX"
else
  echo "edgecnn setup: PyTorch's CPU wheel index did not answer; torch from the default index" \
       "(set TORCH_INDEX_URL to choose another)" >&2
  pip install "$TORCH_SPEC"
  # the PyPI wheel's C++ ops link CUDA and do not load with a CPU torch: edgecnn/models/_torchvision.py shims nms
  pip install --no-deps "$TORCHVISION_SPEC"
fi
"$VENV/bin/python" -c "import torch; print('edgecnn setup: installed torch', torch.__version__, '(CPU build)' if torch.version.cuda is None else f'(CUDA {torch.version.cuda} build: several GB; TORCH_INDEX_URL=$CPU_INDEX avoids it)')" >&2
pip install -e ".[$EXTRAS]"
echo "$want" > "$stamp"
"$VENV/bin/edgecnn" --version >&2
