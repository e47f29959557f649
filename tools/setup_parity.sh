#!/usr/bin/env bash
# Install what the cross-runtime parity tests (tests/test_embed_parity.py, marker `parity`) need, on a fresh
# Debian machine: Chromium, cmake, g++ (apt), the npm packages of examples/node and examples/web
# (onnxruntime-node, onnxruntime-web, playwright-core), ONNX Runtime's C/C++ headers and library
# (tools/fetch_ort_cpp.sh), and the C++ example. Idempotent: a second run only checks and returns.
#
#   tools/setup_parity.sh            # after tools/setup.sh (needs .venv with onnxruntime)
#
# Needs root (or sudo) for apt-get, and the package registries (Debian, npm). Node.js 18+ must be there.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
t0=$SECONDS
say() { echo "setup_parity: $*"; }
die() { echo "setup_parity: error: $*" >&2; exit 1; }

# ---- system packages (only the missing ones)
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v cmake >/dev/null || missing+=(cmake)
command -v g++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  say "apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v node >/dev/null || die "node not found: install Node.js 18+ (Debian: apt-get install nodejs npm)"
command -v npm >/dev/null || die "npm not found: install npm"

# ---- npm packages (npm ci only when node_modules is older than the lock file, or missing)
npm_ci() {
  local dir="$1" marker="$1/node_modules/.package-lock.json"
  if [[ ! -f "$marker" || "$dir/package-lock.json" -nt "$marker" ]]; then
    say "npm ci in $dir"
    # ONNXRUNTIME_NODE_INSTALL=skip: onnxruntime-node's post-install would download CUDA libraries from a host
    # outside the package registries; the CPU binaries ship in the package itself.
    (cd "$dir" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error)
  fi
}
npm_ci examples/node
npm_ci examples/web

# ---- ONNX Runtime C/C++ headers + library, then the C++ example
tools/fetch_ort_cpp.sh >/dev/null
if [[ ! -x examples/cpp/build/edgecnn_classify ]] || [[ -n "$(find examples/cpp/src examples/cpp/CMakeLists.txt \
    -newer examples/cpp/build/edgecnn_classify 2>/dev/null)" ]]; then
  say "building examples/cpp"
  cmake -S examples/cpp -B examples/cpp/build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build examples/cpp/build -j "$(nproc)" >/dev/null
fi

say "ready in $((SECONDS - t0)) s (chromium: $(command -v chromium), C++: examples/cpp/build/edgecnn_classify)"
