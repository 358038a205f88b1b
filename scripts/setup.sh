#!/usr/bin/env bash
# Installs the workspace with pnpm (fetched through npx, pinned) and builds every package.
# Idempotent: a second run only re-checks the lockfile and rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true   # llama.cpp (test oracle) must never try to build or download itself
PNPM="npx -y pnpm@10.34.8"
if [ -f pnpm-lock.yaml ]; then
  $PNPM install --frozen-lockfile --reporter=append-only >&2
else
  $PNPM install --reporter=append-only >&2
fi
$PNPM --filter @swarm/kernels run build:wasm >&2   # WebAssembly SIMD kernels (AssemblyScript) -> packages/kernels/dist/wasm/
$PNPM exec tsc -b >&2
