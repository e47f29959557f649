#!/usr/bin/env bash
# Lay out ONNX Runtime's C/C++ headers and shared library under third_party/onnxruntime/ (git-ignored),
# in the layout of an official release archive, so examples/cpp builds with ORT_ROOT=third_party/onnxruntime:
#
#   third_party/onnxruntime/include/onnxruntime_cxx_api.h ...   (headers, C API version 29)
#   third_party/onnxruntime/lib/libonnxruntime.so -> libonnxruntime.so.1 -> libonnxruntime.so.1.X.Y
#
# Where they come from (only package registries are reachable on our machines):
#   - headers: the npm package com.github.asus4.onnxruntime (a Unity plugin that ships ORT's iOS framework
#     with its public headers; the C/C++ headers are platform-independent);
#   - library: the libonnxruntime.so.1.* inside the installed `onnxruntime` Python wheel (onnxruntime/capi/).
# The C API is versioned: headers of API 29 work with any newer library (the wheel's is 1.31, API >= 29).
#
# With an official release (https://github.com/microsoft/onnxruntime/releases, onnxruntime-linux-x64-*.tgz
# or the -gpu- one), skip this script and point ORT_ROOT at the unpacked folder instead.
#
# Idempotent: does nothing when the headers and library are already there. Usage:
#   tools/fetch_ort_cpp.sh [DEST]            # DEST defaults to third_party/onnxruntime
#   PYTHON=.venv/bin/python tools/fetch_ort_cpp.sh
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="${1:-$ROOT/third_party/onnxruntime}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
HEADERS_PKG="com.github.asus4.onnxruntime@0.4.9"
HEADERS_DIR="package/Plugins/iOS~/onnxruntime.xcframework/ios-arm64/onnxruntime.framework/Headers"

die() { echo "fetch_ort_cpp: $*" >&2; exit 1; }

# ---- headers (npm tarball, ~150 MB, only the Headers folder is kept)
if [[ ! -f "$DEST/include/onnxruntime_cxx_api.h" ]]; then
  command -v npm >/dev/null || die "npm not found: install Node.js 18+ (it fetches the header package)"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  echo "fetch_ort_cpp: fetching headers from npm package $HEADERS_PKG"
  (cd "$tmp" && npm pack --silent "$HEADERS_PKG" >/dev/null) || die "npm pack $HEADERS_PKG failed"
  tar -xzf "$tmp"/*.tgz -C "$tmp" "$HEADERS_DIR" || die "headers not found in $HEADERS_PKG"
  mkdir -p "$DEST/include"
  cp "$tmp/$HEADERS_DIR"/*.h "$DEST/include/"
fi

# ---- library (from the onnxruntime Python wheel)
if [[ ! -e "$DEST/lib/libonnxruntime.so" ]]; then
  [[ -x "$PYTHON" ]] || PYTHON="$(command -v python3)" || die "python not found"
  capi="$("$PYTHON" -c 'import os, onnxruntime; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))')" \
    || die "the onnxruntime Python package is not installed for $PYTHON (pip install onnxruntime)"
  lib="$(ls "$capi"/libonnxruntime.so.1.* 2>/dev/null | head -n1)"
  [[ -n "$lib" ]] || die "no libonnxruntime.so.1.* in $capi"
  mkdir -p "$DEST/lib"
  cp "$lib" "$DEST/lib/"
  # the CUDA/TensorRT providers of onnxruntime-gpu load through this one, when present
  [[ -f "$capi/libonnxruntime_providers_shared.so" ]] && cp "$capi"/libonnxruntime_providers_*.so "$DEST/lib/"
  ln -sf "$(basename "$lib")" "$DEST/lib/libonnxruntime.so.1"
  ln -sf libonnxruntime.so.1 "$DEST/lib/libonnxruntime.so"
  echo "fetch_ort_cpp: library $(basename "$lib") from $capi"
fi

echo "fetch_ort_cpp: ready: ORT_ROOT=$DEST"
