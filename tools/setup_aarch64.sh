#!/usr/bin/env bash
# Set up the emulated aarch64 environment of the aarch64 check (tests/test_aarch64.py, marker `aarch64`), from the
# registries only, without touching the machine's apt configuration:
#   - qemu-user (static qemu-aarch64) from Debian's bookworm-backports, unpacked with dpkg -x;
#   - an arm64 Python 3.11 from Debian bookworm (python3.11 and what it depends on, plus libstdc++6/libgomp1 for
#     ONNX Runtime), fetched with apt-get into a private apt state (no `dpkg --add-architecture` on the host) and
#     unpacked with dpkg -x into a sysroot;
#   - edgecnn[cpu,openvino] for aarch64 (the torch-free install a device gets), by pip's platform wheels:
#     pip install --target SITE --platform manylinux_2_*_aarch64 --only-binary=:all:, with ONNX Runtime and
#     OpenVINO pinned below (ORT_VERSION: the newest release in 1.20-1.32 that runs under this emulator; see
#     docs/embedding.md).
# Everything lives in third_party/aarch64/ (git-ignored); third_party/aarch64/python runs the emulated Python with
# SITE and this checkout on its path. Idempotent: a second run only checks a stamp and returns.
#
#   tools/setup_aarch64.sh                  # after tools/setup.sh (builds the edgecnn wheel with .venv)
#   EDGECNN_AARCH64_DIR=DIR                 # somewhere else than third_party/aarch64
#
# Needs Debian's apt-get and dpkg (apt-get runs on its own state folders under DIR: the host's apt configuration and
# dpkg database are not touched) and the package registries (Debian, PyPI). From nothing it downloads ~130 MB and
# takes under a minute here; cached, it only checks its stamp.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
DIR="${EDGECNN_AARCH64_DIR:-$ROOT/third_party/aarch64}"
# ONNX Runtime for this check only (edgecnn[cpu] itself asks onnxruntime>=1.18): 1.32.0 runs under bookworm-backports'
# qemu 10.0; under bookworm's qemu 7.2, 1.28.0 and later crash at import (1.27.0 is the newest that runs there).
ORT_VERSION="${ORT_VERSION:-1.32.0}"
OPENVINO_VERSION="${OPENVINO_VERSION:-2026.4.1}"
QEMU_SUITE="${QEMU_SUITE:-bookworm-backports}"   # bookworm has qemu 7.2, bookworm-backports 10.0
PY="$ROOT/.venv/bin/python"
t0=$SECONDS
say() { echo "setup_aarch64: $*"; }
die() { echo "setup_aarch64: error: $*" >&2; exit 1; }

want="$(cat "$0" pyproject.toml | sha256sum | cut -c1-16)"
if [[ -f "$DIR/.stamp" && "$(cat "$DIR/.stamp")" == "$want" && -x "$DIR/python" ]]; then
  say "ready (cached in $DIR)"
  exit 0
fi
command -v apt-get >/dev/null || die "apt-get not found: this script needs Debian's package tools"
command -v dpkg >/dev/null || die "dpkg not found"
[[ -x "$PY" ]] || die "$PY not found: run tools/setup.sh (or make setup) first"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -f "$KEYRING" ]] || die "$KEYRING not found: apt-get install debian-archive-keyring"
mkdir -p "$DIR"

# ---- a private apt state: $1 = name, $2 = architecture, rest = sources.list lines
apt_state() {
  local name="$1" arch="$2"; shift 2
  local d="$DIR/apt/$name"
  mkdir -p "$d/lists/partial" "$d/archives/partial"
  : > "$d/status"
  printf '%s\n' "$@" > "$d/sources.list"
  APT_OPTS=(-o "APT::Architecture=$arch" -o "APT::Architectures::=$arch" -o "Dir::Etc::SourceList=$d/sources.list"
            -o "Dir::Etc::SourceParts=/nonexistent" -o "Dir::State::Lists=$d/lists" -o "Dir::State::status=$d/status"
            -o "Dir::Cache=$d" -o "Dir::Cache::archives=$d/archives" -o "Debug::NoLocking=1"
            -o "APT::Sandbox::User=root" -o "Acquire::Retries=3")
  apt-get "${APT_OPTS[@]}" update -qq >/dev/null
}

# ---- qemu-user (static) from $QEMU_SUITE
QEMU="$DIR/qemu/usr/bin/qemu-aarch64"
if [[ ! -x "$QEMU" ]]; then
  say "qemu-user from Debian $QEMU_SUITE"
  apt_state qemu amd64 "deb [arch=amd64 signed-by=$KEYRING] http://deb.debian.org/debian $QEMU_SUITE main"
  pkg=qemu-user
  # bookworm's 7.2 ships the static binaries as qemu-user-static (qemu-aarch64-static); 10.0's qemu-user is static
  [[ "$QEMU_SUITE" == bookworm ]] && pkg=qemu-user-static
  rm -f "$DIR/apt/qemu/archives/"*.deb
  (cd "$DIR/apt/qemu/archives" && apt-get "${APT_OPTS[@]}" download -qq "$pkg/$QEMU_SUITE" >/dev/null)
  rm -rf "$DIR/qemu" "$DIR/qemu.tmp"
  dpkg -x "$DIR/apt/qemu/archives/"*.deb "$DIR/qemu.tmp"
  mkdir -p "$(dirname "$QEMU")"   # keep the one emulator used (the package holds every target: 360 MB)
  cp "$DIR/qemu.tmp/usr/bin/qemu-aarch64$([[ "$pkg" == qemu-user-static ]] && echo -static)" "$QEMU"
  rm -rf "$DIR/qemu.tmp" "$DIR/apt/qemu/archives/"*.deb
fi
"$QEMU" --version | head -1 | sed 's/^/setup_aarch64: /'

# ---- the arm64 sysroot: python3.11 and its dependencies, from bookworm (+ updates and security)
SYSROOT="$DIR/sysroot"
if [[ ! -x "$SYSROOT/usr/bin/python3.11" ]]; then
  say "arm64 python3.11 from Debian bookworm"
  apt_state arm64 arm64 \
    "deb [arch=arm64 signed-by=$KEYRING] http://deb.debian.org/debian bookworm main" \
    "deb [arch=arm64 signed-by=$KEYRING] http://deb.debian.org/debian bookworm-updates main" \
    "deb [arch=arm64 signed-by=$KEYRING] http://deb.debian.org/debian-security bookworm-security main"
  # an empty dpkg status: apt downloads python3.11's whole dependency closure for the sysroot
  apt-get "${APT_OPTS[@]}" install -d -y -qq --no-install-recommends python3.11 libstdc++6 libgomp1 >/dev/null
  rm -rf "$SYSROOT.tmp"
  for deb in "$DIR/apt/arm64/archives/"*.deb; do dpkg -x "$deb" "$SYSROOT.tmp"; done
  rm -rf "$SYSROOT" && mv "$SYSROOT.tmp" "$SYSROOT"
  rm -f "$DIR/apt/arm64/archives/"*.deb
fi

# ---- edgecnn[cpu] for aarch64 (no torch): this checkout's wheel and its dependencies' aarch64 wheels
PLATFORMS=()
for m in $(seq 36 -1 17); do PLATFORMS+=(--platform "manylinux_2_${m}_aarch64"); done  # bookworm has glibc 2.36
PLATFORMS+=(--platform manylinux2014_aarch64 --python-version 3.11 --implementation cp --abi cp311)
pipt() {  # (the grep drops pip's notes about this machine's own extra index folders)
  "$PY" -m pip install -q --disable-pip-version-check --no-warn-script-location --no-warn-conflicts --upgrade \
    --only-binary=:all: "${PLATFORMS[@]}" "$@" 2> >(grep -v "^WARNING: Location 'file:" >&2)
}
wheels="$DIR/wheels"
rm -rf "$wheels" && mkdir -p "$wheels"
"$PY" -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w "$wheels" . >/dev/null
edgecnn_whl="$(ls "$wheels"/edgecnn-*.whl)"
say "edgecnn[cpu,openvino] for aarch64: onnxruntime==$ORT_VERSION, openvino==$OPENVINO_VERSION (pip --platform)"
rm -rf "$DIR/site.tmp"
pipt --target "$DIR/site.tmp" "edgecnn[cpu,openvino] @ file://$edgecnn_whl" "onnxruntime==$ORT_VERSION" \
  "openvino==$OPENVINO_VERSION"
rm -rf "$DIR/site" && mv "$DIR/site.tmp" "$DIR/site"

# ---- the launcher: the emulated Python with SITE and this checkout (the edgecnn under test) on its path
cat > "$DIR/python" <<EOF
#!/bin/sh
# The emulated aarch64 Python of tools/setup_aarch64.sh: edgecnn from $ROOT, its dependencies from site/.
# Extra paths go in EDGECNN_AARCH64_PATH.
D="$DIR"
PYTHONPATH="$ROOT:\${EDGECNN_AARCH64_PATH:+\$EDGECNN_AARCH64_PATH:}\$D/site" PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1 \\
  exec "\$D/qemu/usr/bin/qemu-aarch64" -L "\$D/sysroot" "\$D/sysroot/usr/bin/python3.11" "\$@"
EOF
chmod +x "$DIR/python"
"$DIR/python" -c "import platform, onnxruntime, openvino, numpy; print('setup_aarch64: emulated', platform.machine(), \
'python', platform.python_version(), 'onnxruntime', onnxruntime.__version__, 'openvino', openvino.__version__, \
'numpy', numpy.__version__)" 2> >(grep -v -e MIDR_EL1 -e cpuid_info >&2)
echo "$want" > "$DIR/.stamp"
say "ready in $((SECONDS - t0)) s ($DIR/python)"
