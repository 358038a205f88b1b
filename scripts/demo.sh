#!/usr/bin/env bash
# The README's main command: install and build everything, then run a four-process swarm on loopback (a DHT peer and
# three nodes splitting the embedded default model's blocks) and generate text through it (scripts/demo.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node scripts/demo.mjs "$@"
