#!/usr/bin/env bash
# Installs and builds the workspace, runs the whole vitest suite, and ends with one plain line `N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true
# Mesa 25 lavapipe for the WebGPU tests (packages/kernels/src/webgpu); they fail loudly without it
if lavapipe_env=$(bash scripts/setup-lavapipe.sh); then
  eval "$lavapipe_env"
else
  echo "##### setup-lavapipe.sh failed: the WebGPU tests will fail (set SWARM_SKIP_WEBGPU=1 to skip them) #####" >&2
fi
results=$(mktemp -d)/vitest.json
npx vitest run --reporter=default --reporter=json --outputFile="$results" "$@"
status=$?
node -e '
  const fs = require("node:fs")
  let r
  try { r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")) } catch { console.log("0 passed, 1 failed"); process.exit(0) }
  // a suite that failed to load counts as a failure even though it ran no test
  const brokenFiles = r.testResults.filter(f => f.status === "failed" && f.assertionResults.length === 0).length
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests + brokenFiles} failed` + (r.numPendingTests ? `, ${r.numPendingTests} skipped` : ""))
' "$results"
exit $status
