#!/bin/bash
# WebGPU on this machine's own GPU (never lavapipe): the adapter, the WebGPU conformance and whole-model tests, the
# kernel figures (bench-webgpu.mjs), then `swarm bench --backend webgpu` on the TinyLlama-shaped random model for each
# weight dtype given (default: q8_0 q4_0 f16 f32), made with `swarm make-model` in a temp dir. Build first. Every part
# runs even when one fails; the exit status is 1 if any did.
#
#   bash scripts/webgpu-check.sh [DTYPE ...]
set -u
cd "$(dirname "$0")/.."
export SWARM_WEBGPU_LAVAPIPE=0
dtypes=("$@"); [ ${#dtypes[@]} -eq 0 ] && dtypes=(q8_0 q4_0 f16 f32)
failed=()
echo "== adapter"
node -e "import('./packages/kernels/dist/index.js').then(async k => { const e = await k.createWebGpuExecutor(); console.log(e.name) })
  .catch(err => { console.error('no GPU adapter (this script never uses lavapipe; npm test checks WebGPU on it): ' + err.message); process.exit(1) })" || exit 1
echo "== conformance and whole-model tests (packages/kernels/src/webgpu)"
node node_modules/vitest/vitest.mjs run packages/kernels/src/webgpu || failed+=("the WebGPU tests")
echo "== kernel figures"
node scripts/bench-webgpu.mjs || failed+=("bench-webgpu.mjs")
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
for d in "${dtypes[@]}"; do
  echo "== swarm bench --backend webgpu, tinyllama-8l $d"
  node packages/client/dist/cli.js make-model --preset tinyllama-8l --dtype "$d" --out "$dir/m.gguf" > /dev/null &&
    node packages/client/dist/cli.js bench --model "$dir/m.gguf" --backend webgpu --prompt-tokens 128 --gen-tokens 64 ||
    failed+=("swarm bench $d")
  rm -f "$dir/m.gguf"
done
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
