#!/usr/bin/env bash
# One swarm scenario, one role at a time or all at once. docker/compose.yaml runs each container through this
# script, and test/swarm-scenario.test.ts runs `local`, which starts the very same roles as background processes on
# loopback: the code path the test checks is the compose path.
#
# Usage: swarm-scenario.sh ROLE
#   dht      run a `swarm-node dht` peer; writes its multiaddr to $BOOTSTRAP_FILE once it is ready
#   node     run `swarm-node serve --blocks $BLOCKS`; waits for the bootstrap address, writes its ready line to
#            $SHARED_DIR/ready-node-$NODE_NAME.json
#   client   wait for the bootstrap address and $WAIT_NODES ready nodes, run `swarm generate --bootstrap`, and (with
#            COMPARE_LOCAL=1) the same generation with --local; exit 1 unless both give the same tokens and text
#   local    the whole scenario on 127.0.0.1 in this shell: dht, three nodes splitting the blocks, the client and its
#            comparison, then SIGTERM to every node and the dht and a check that each exits 0
#
# Environment (defaults in brackets):
#   MODEL           model file or directory [local: made with `swarm make-model` in a temporary directory]
#   BLOCKS          node: block range A:B [all blocks]
#   SPLIT           local: the nodes' ranges, space separated, e.g. "0:2 2:5 5:6" [three near-equal thirds]
#   SHARED_DIR      directory shared by all roles (a compose volume) [/shared; local: a temporary directory]
#   BOOTSTRAP       a bootstrap multiaddr; when set, BOOTSTRAP_FILE is not read
#   BOOTSTRAP_FILE  file holding the dht's multiaddr [$SHARED_DIR/bootstrap]
#   LISTEN_HOST     IPv4 address to listen on; "auto" = this host's first non-loopback IPv4 [127.0.0.1]
#   PORT            TCP port to listen on [0: any free port]
#   NODE_NAME       node: name of its ready file [the block range]
#   THREADS         node: compute threads [1]
#   WAIT_NODES      client: ready nodes to wait for [0]
#   WAIT_TIMEOUT    seconds to wait for the bootstrap address and the nodes [120]
#   PROMPT          client prompt ["The swarm keeps every block"]
#   MAX_TOKENS      client: tokens to generate (greedy, --temperature 0 whatever the model's defaults) [32]
#   COMPARE_LOCAL   client: 1 = also generate with --local and compare [1]
#   KEEP_WORK       local: 1 = keep the temporary directory (model, shared files) [0]
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
self="$repo/scripts/swarm-scenario.sh"
swarm_node=(node "$repo/packages/node/bin/swarm-node.js")
swarm=(node "$repo/packages/client/bin/swarm.js")

say () { printf 'swarm-scenario: %s\n' "$*"; }
fail () { printf 'swarm-scenario: %s\n' "$*" >&2; exit 1; }

shared_dir () { printf '%s' "${SHARED_DIR:-/shared}"; }
bootstrap_file () { printf '%s' "${BOOTSTRAP_FILE:-$(shared_dir)/bootstrap}"; }

listen_host () {
  local host=${LISTEN_HOST:-127.0.0.1}
  if [ "$host" = auto ]; then
    host=$(node -e '
      for (const list of Object.values(require("os").networkInterfaces()))
        for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) { console.log(a.address); process.exit(0) }
      process.exit(1)') || fail "LISTEN_HOST=auto: this host has no non-loopback IPv4 address"
  fi
  printf '%s' "$host"
}

# waits until FILE exists and is not empty (written atomically by its producer)
wait_for_file () {
  local file=$1 what=$2 deadline=$((SECONDS + ${WAIT_TIMEOUT:-120}))
  until [ -s "$file" ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "no $what after ${WAIT_TIMEOUT:-120} s (waited for $file)"
    sleep 0.2
  done
}

bootstrap_addr () {
  if [ -n "${BOOTSTRAP:-}" ]; then printf '%s' "$BOOTSTRAP"; return; fi
  wait_for_file "$(bootstrap_file)" "bootstrap address"
  cat "$(bootstrap_file)"
}

write_atomically () { # FILE CONTENT
  printf '%s\n' "$2" > "$1.tmp.$$"
  mv -f "$1.tmp.$$" "$1"
}

# Runs a command that prints a JSON ready line, echoes its stdout, and calls ON_READY with the ready line. The
# command is a child (not exec'd) so that the ready line can be handled; SIGTERM/SIGINT are passed on to it and the
# role exits with its status.
run_with_ready () { # ON_READY COMMAND...
  local on_ready=$1; shift
  "$@" > >(
    while IFS= read -r line; do
      printf '%s\n' "$line"
      case $line in '{"event":"ready"'*) "$on_ready" "$line" ;; esac
    done
  ) &
  local child=$! rc=0
  trap 'kill -TERM "$child" 2>/dev/null || true' TERM INT
  wait "$child" || rc=$?
  # a trapped signal interrupts `wait`; keep waiting for the child's own exit status
  while kill -0 "$child" 2>/dev/null; do rc=0; wait "$child" || rc=$?; done
  trap - TERM INT
  return "$rc"
}

dht_ready () {
  local addr
  addr=$(READY="$1" HOST="$(listen_host)" node -e '
    const addrs = JSON.parse(process.env.READY).addrs
    const own = addrs.find(a => a.startsWith(`/ip4/${process.env.HOST}/`)) ?? addrs.find(a => !a.startsWith("/ip4/127.")) ?? addrs[0]
    console.log(own)')
  write_atomically "$(bootstrap_file)" "$addr"
}

node_ready () {
  write_atomically "$(shared_dir)/ready-node-${NODE_NAME:-${BLOCKS:-all}}.json" "$1"
}

role_dht () {
  mkdir -p "$(shared_dir)" "$(dirname "$(bootstrap_file)")"
  # a new dht means a new swarm: forget the previous run's address and ready nodes
  rm -f "$(bootstrap_file)" "$(shared_dir)"/ready-node-*.json
  run_with_ready dht_ready "${swarm_node[@]}" dht --listen "/ip4/$(listen_host)/tcp/${PORT:-0}" --json
}

role_node () {
  [ -n "${MODEL:-}" ] || fail "node: MODEL is not set"
  local bootstrap blocks=()
  bootstrap=$(bootstrap_addr)
  [ -z "${BLOCKS:-}" ] || blocks=(--blocks "$BLOCKS")
  mkdir -p "$(shared_dir)"
  run_with_ready node_ready "${swarm_node[@]}" serve --model "$MODEL" "${blocks[@]}" \
    --listen "/ip4/$(listen_host)/tcp/${PORT:-0}" --bootstrap "$bootstrap" --threads "${THREADS:-1}" --json
}

role_client () {
  [ -n "${MODEL:-}" ] || fail "client: MODEL is not set"
  local bootstrap want=${WAIT_NODES:-0} deadline=$((SECONDS + ${WAIT_TIMEOUT:-120}))
  bootstrap=$(bootstrap_addr)
  if [ "$want" -gt 0 ]; then
    local ready=(); shopt -s nullglob
    for (( ; ; )); do
      ready=("$(shared_dir)"/ready-node-*.json)
      [ "${#ready[@]}" -lt "$want" ] || break
      [ "$SECONDS" -lt "$deadline" ] || fail "client: ${#ready[@]} of $want nodes ready after ${WAIT_TIMEOUT:-120} s"
      sleep 0.2
    done
    shopt -u nullglob
  fi
  local prompt=${PROMPT:-The swarm keeps every block} max=${MAX_TOKENS:-32} swarm_out local_out local_file= local_pid=
  if [ "${COMPARE_LOCAL:-1}" = 1 ]; then
    # the reference generation runs meanwhile: it needs nothing from the swarm
    local_file=$(mktemp)
    "${swarm[@]}" generate --local --model "$MODEL" --prompt "$prompt" --max-tokens "$max" --temperature 0 --json > "$local_file" &
    local_pid=$!
  fi
  say "client: generating $max tokens through $bootstrap"
  swarm_out=$("${swarm[@]}" generate --bootstrap "$bootstrap" --model "$MODEL" --prompt "$prompt" --max-tokens "$max" --temperature 0 --json) \
    || { [ -z "${local_pid:-}" ] || kill "$local_pid" 2>/dev/null || true; rm -f "${local_file:-}"; fail "client: swarm generate --bootstrap failed"; }
  printf 'swarm: %s\n' "$swarm_out"
  [ "${COMPARE_LOCAL:-1}" = 1 ] || return 0
  wait "$local_pid" || { rm -f "$local_file"; fail "client: swarm generate --local failed"; }
  local_out=$(cat "$local_file")
  rm -f "$local_file"
  printf 'local: %s\n' "$local_out"
  SWARM_OUT=$swarm_out LOCAL_OUT=$local_out node -e '
    const swarm = JSON.parse(process.env.SWARM_OUT), local = JSON.parse(process.env.LOCAL_OUT)
    const same = swarm.text === local.text && JSON.stringify(swarm.tokens) === JSON.stringify(local.tokens)
    console.log(same
      ? `swarm-scenario: swarm text equals local text (${swarm.tokens.length} tokens): ${JSON.stringify(swarm.text)}`
      : `swarm-scenario: swarm text differs from local text:\n  swarm ${JSON.stringify(swarm.text)}\n  local ${JSON.stringify(local.text)}`)
    process.exit(same ? 0 : 1)'
}

# ---- local: the whole scenario in this shell ----

local_pids=()
local_names=()
local_work=

stop_roles () { # SIGTERM every role still running, then SIGKILL the process group of any left after 10 s
  local pid
  for pid in "${local_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  local deadline=$((SECONDS + 10))
  for pid in "${local_pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    # each role is its own process group (set -m), so this also reaches its swarm-node child
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
}

local_cleanup () {
  stop_roles
  if [ -n "$local_work" ] && [ "${KEEP_WORK:-0}" != 1 ]; then rm -rf "$local_work"; fi
}

start_role () { # NAME ROLE [VAR=VALUE...]: runs `swarm-scenario.sh ROLE` in the background, output prefixed
  local name=$1 role=$2; shift 2
  env "$@" bash "$self" "$role" > >(sed -u "s/^/[$name] /" >&2) 2>&1 &
  local_pids+=("$!")
  local_names+=("$name")
}

role_local () {
  local_work=$(mktemp -d "${TMPDIR:-/tmp}/swarm-scenario.XXXXXX")
  trap local_cleanup EXIT
  trap 'exit 130' INT TERM
  set -m   # job control: every background role gets a process group of its own
  export SHARED_DIR="$local_work/shared" LISTEN_HOST=127.0.0.1
  unset BOOTSTRAP BOOTSTRAP_FILE PORT
  mkdir -p "$SHARED_DIR"
  local model=${MODEL:-}
  if [ -z "$model" ]; then
    model="$local_work/tiny-q8_0.gguf"
    "${swarm[@]}" make-model --preset tiny --dtype q8_0 --out "$model" >&2
  fi
  export MODEL=$model
  local split=${SPLIT:-}
  if [ -z "$split" ]; then
    local layers
    layers=$("${swarm_node[@]}" inspect --model "$MODEL" --json | node -e '
      let s = ""; process.stdin.on("data", d => { s += d }).on("end", () => console.log(JSON.parse(s).config.nLayers))')
    [ "$layers" -ge 3 ] || fail "local: the model has $layers blocks, fewer than three nodes"
    split="0:$((layers / 3)) $((layers / 3)):$((2 * layers / 3)) $((2 * layers / 3)):$layers"
  fi
  local ranges i=0
  read -r -a ranges <<< "$split"
  say "local: model $MODEL, nodes ${ranges[*]}"

  start_role dht dht
  wait_for_file "$SHARED_DIR/bootstrap" "bootstrap address from the dht"
  say "local: dht ready at $(cat "$SHARED_DIR/bootstrap")"
  for range in "${ranges[@]}"; do
    start_role "node$i" node BLOCKS="$range" NODE_NAME="node$i"
    i=$((i + 1))
  done

  # wait for the nodes here too, so that a node that dies (bad range, bad model) fails the scenario at once
  local deadline=$((SECONDS + ${WAIT_TIMEOUT:-120})) ready=() k
  shopt -s nullglob
  for (( ; ; )); do
    ready=("$SHARED_DIR"/ready-node-*.json)
    [ "${#ready[@]}" -lt "${#ranges[@]}" ] || break
    for k in "${!local_pids[@]}"; do
      kill -0 "${local_pids[$k]}" 2>/dev/null || fail "local: ${local_names[$k]} exited before it was ready"
    done
    [ "$SECONDS" -lt "$deadline" ] || fail "local: ${#ready[@]} of ${#ranges[@]} nodes ready after ${WAIT_TIMEOUT:-120} s"
    sleep 0.2
  done
  shopt -u nullglob
  say "local: ${#ranges[@]} nodes ready"

  local client_rc=0
  env WAIT_NODES="${#ranges[@]}" bash "$self" client || client_rc=$?

  # clean shutdown: every node announces itself offline and exits 0 on SIGTERM (all at once), then the dht
  local failed=0 j pid rc
  for (( j = 1; j < ${#local_pids[@]}; j++ )); do kill -TERM "${local_pids[$j]}" 2>/dev/null || true; done
  for j in $(seq 1 $((${#local_pids[@]} - 1))) 0; do
    pid=${local_pids[$j]} rc=0
    [ "$j" -gt 0 ] || kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" || rc=$?
    if [ "$rc" -eq 0 ]; then say "local: ${local_names[$j]} exited 0"; else say "local: ${local_names[$j]} exited $rc"; failed=1; fi
  done
  local_pids=()
  [ "$client_rc" -eq 0 ] || fail "local: the client failed (exit $client_rc)"
  [ "$failed" -eq 0 ] || fail "local: not every process shut down cleanly"
  say "local: scenario passed (swarm output equals local output, clean shutdown)"
}

case "${1:-}" in
  dht) role_dht ;;
  node) role_node ;;
  client) role_client ;;
  local) role_local ;;
  -h|--help|'') sed -n '2,/^set -euo/p' "$self" | sed '$d; s/^# \{0,1\}//'; [ -n "${1:-}" ] ;;
  *) fail "unknown role '$1' (dht | node | client | local)" ;;
esac
