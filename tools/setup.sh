#!/usr/bin/env bash
# Set up .venv for edgecnn development: torch's CPU build FIRST (so nothing pulls a multi-GB CUDA build),
# then edgecnn itself, editable, with ONNX Runtime's CPU build and OpenVINO ([cpu,openvino], so CI runs both
# runtimes) and the export, plot, dev, ray and triton extras. Idempotent: a second run is a no-op
# unless pyproject.toml or this script changed.
#   PYTHON=python3.11 VENV=.venv TORCH_SPEC="torch==2.13.0" TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
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
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  pip install "$TORCH_SPEC" --index-url "$TORCH_INDEX_URL"
else
  pip install "$TORCH_SPEC"
fi
pip install -e ".[$EXTRAS]"
echo "$want" > "$stamp"
"$VENV/bin/edgecnn" --version >&2
