#!/usr/bin/env bash
# The README's main command: install, build, and generate text with the embedded default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
model=.cache/demo/tiny-q8_0.gguf
if [ ! -f "$model" ]; then
  mkdir -p .cache/demo
  node packages/client/dist/cli.js make-model --preset tiny --dtype q8_0 --out "$model" >&2
fi
node packages/client/dist/cli.js generate --local --model "$model" --prompt "${PROMPT:-The swarm}" --max-tokens 48 --seed 1 "$@"
echo
