#!/usr/bin/env bash
# Brings Mesa 25 lavapipe (a CPU Vulkan driver) from Debian bookworm-backports into .cache/lavapipe/ so the npm
# `webgpu` package (Dawn) finds an adapter on a machine without a GPU. Stock bookworm Mesa 22.3 lavapipe is too old
# (Dawn's requestAdapter() returns null on it), but its package is still installed for its dependencies (libllvm15, ...).
# The system's apt sources are never touched: a private sources list, list/state/cache dirs under .cache/lavapipe/apt.
# Idempotent. Prints the environment to use as `export` lines on stdout (`eval "$(bash scripts/setup-lavapipe.sh)"`);
# everything else goes to stderr. Exits non-zero when lavapipe cannot be obtained.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD/.cache/lavapipe"
ROOTFS="$ROOT/root"
ICD="$ROOT/lvp_icd.json"
LIBDIR="$ROOTFS/usr/lib/x86_64-linux-gnu"
RUNTIME_DIR="$ROOT/xdg-runtime"

log() { echo "setup-lavapipe: $*" >&2; }

if [ ! -f "$LIBDIR/libvulkan_lvp.so" ]; then
  if [ "$(uname -m)" != "x86_64" ]; then log "only x86_64 is handled"; exit 1; fi
  # 1. the stock Vulkan loader and Mesa drivers, for their dependencies (the backports driver links the same libs)
  if ! dpkg -s libvulkan1 mesa-vulkan-drivers >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ]; then
      log "installing libvulkan1 mesa-vulkan-drivers (stock, for dependencies)"
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libvulkan1 mesa-vulkan-drivers >&2 \
        || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libvulkan1 mesa-vulkan-drivers >&2; }
    else
      log "libvulkan1 and mesa-vulkan-drivers are missing and this is not root: sudo apt-get install libvulkan1 mesa-vulkan-drivers"
      exit 1
    fi
  fi
  # 2. a private apt view: the system's Debian mirror, suite bookworm-backports
  mkdir -p "$ROOT/apt/lists/partial" "$ROOT/apt/cache/archives/partial" "$ROOT/apt/etc" "$ROOT/debs"
  URI=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
        | grep -oE 'https?://[^ ]*debian/?' | grep -v security | head -n1 || true)
  URI=${URI:-http://deb.debian.org/debian}
  KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
  echo "deb [signed-by=$KEYRING] ${URI%/} bookworm-backports main" > "$ROOT/apt/etc/sources.list"
  APT_OPTS=(-o "Dir::Etc::SourceList=$ROOT/apt/etc/sources.list" -o "Dir::Etc::SourceParts=-"
            -o "Dir::State::Lists=$ROOT/apt/lists" -o "Dir::Cache=$ROOT/apt/cache"
            -o "Dir::State::status=/var/lib/dpkg/status" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
  log "apt-get update (private list: ${URI%/} bookworm-backports)"
  apt-get "${APT_OPTS[@]}" update >&2 || { log "apt-get update failed (offline?)"; exit 1; }
  log "downloading mesa-vulkan-drivers libdrm2 libdrm-amdgpu1 from bookworm-backports"
  rm -f "$ROOT"/debs/*.deb
  (cd "$ROOT/debs" && apt-get "${APT_OPTS[@]}" download \
      mesa-vulkan-drivers/bookworm-backports libdrm2/bookworm-backports libdrm-amdgpu1/bookworm-backports >&2) \
    || { log "apt-get download failed"; exit 1; }
  rm -rf "$ROOTFS"; mkdir -p "$ROOTFS"
  for deb in "$ROOT"/debs/*.deb; do dpkg -x "$deb" "$ROOTFS"; done
  [ -f "$LIBDIR/libvulkan_lvp.so" ] || { log "libvulkan_lvp.so missing after unpacking"; exit 1; }
fi

cat > "$ICD" <<EOF
{
  "file_format_version": "1.0.1",
  "ICD": { "library_path": "$LIBDIR/libvulkan_lvp.so", "api_version": "1.4.305" }
}
EOF
mkdir -p "$RUNTIME_DIR"; chmod 700 "$RUNTIME_DIR"
log "lavapipe ready: $(ls "$ROOT"/debs 2>/dev/null | grep mesa-vulkan || echo "$LIBDIR/libvulkan_lvp.so")"
echo "export VK_ICD_FILENAMES=$ICD"
echo "export LD_LIBRARY_PATH=$LIBDIR\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
echo "export XDG_RUNTIME_DIR=\${XDG_RUNTIME_DIR:-$RUNTIME_DIR}"
