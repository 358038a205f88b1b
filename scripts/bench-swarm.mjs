#!/usr/bin/env node
// The cost of the swarm: decode and prefill tokens/s through a 3-node loopback swarm vs the same model in one
// process, alternating runs, and the milliseconds each hop adds per token.
//
//   node scripts/bench-swarm.mjs [--model PATH] [--threads 1] [--prompt-tokens 128] [--gen-tokens 64] [--runs 3]
//                                [--push on|off|both]
//
// --push: server-to-server push on (the default, as clients run), off (`swarm bench --no-push`: every span's output
// goes back through the client), or both (alternating, each printed with its ratio).
//
// Default model: the TinyLlama-shaped random 8-layer q8_0 GGUF (dim 2048, 32 heads / 4 KV heads, ffn 5632,
// vocab 32000), written to .cache/bench/ on first use. Nodes serve thirds of the blocks ([0, 3), [3, 5), [5, 8) for 8) with --threads N each;
// the local run uses --threads N too, so the one node computing at any moment has the threads the local run has.
// Local: `swarm bench --model M --json`; swarm: `swarm bench --bootstrap B --model M --json` (load time excluded).
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { swarmProcesses } from './swarm-processes.mjs'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const swarmCli = join(root, 'packages/client/dist/cli.js')

const o = { threads: 1, promptTokens: 128, genTokens: 64, runs: 3, push: 'on' }
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]
  const v = () => { if (argv[i + 1] === undefined) throw new Error(`missing value for ${a}`); return argv[++i] }
  if (a === '--model') o.model = v()
  else if (a === '--threads') o.threads = Number(v())
  else if (a === '--prompt-tokens') o.promptTokens = Number(v())
  else if (a === '--gen-tokens') o.genTokens = Number(v())
  else if (a === '--runs') o.runs = Number(v())
  else if (a === '--push') o.push = v()
  else { console.error(`unknown argument ${a}`); process.exit(2) }
}
if (!['on', 'off', 'both'].includes(o.push)) { console.error('--push takes on, off or both'); process.exit(2) }
for (const [flag, value] of [['--threads', o.threads], ['--prompt-tokens', o.promptTokens], ['--gen-tokens', o.genTokens], ['--runs', o.runs]]) {
  if (!Number.isInteger(value) || value < 1) { console.error(`${flag} takes an integer >= 1`); process.exit(2) }
}
const modes = o.push === 'both' ? ['on', 'off'] : [o.push]
const modeArgs = mode => mode === 'off' ? ['--no-push'] : []

if (o.model === undefined) {
  o.model = join(root, '.cache/bench/tinyllama-8l-q8_0.gguf')
  if (!existsSync(o.model)) {
    mkdirSync(dirname(o.model), { recursive: true })
    console.error(`writing ${o.model} ...`)
    const r = spawnSync(process.execPath, [swarmCli, 'make-model', '--preset', 'tinyllama-8l', '--dtype', 'q8_0', '--out', o.model], { stdio: 'inherit' })
    if (r.status !== 0) process.exit(1)
  }
}

const { startSwarm, stopAll } = swarmProcesses()

function bench (extra) {
  const r = spawnSync(process.execPath, [swarmCli, 'bench', '--model', o.model, '--prompt-tokens', String(o.promptTokens),
    '--gen-tokens', String(o.genTokens), '--json', ...extra], { encoding: 'utf8', maxBuffer: 64 << 20 })
  if (r.status !== 0) throw new Error(`swarm bench failed: ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop())
}

const median = values => { const s = [...values].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }

try {
  const bootstrap = (await startSwarm(o.model, o.threads)).dht.addrs[0]
  // volunteers' nodes run for hours: one discarded run through the swarm (and one local) first, so the nodes' JIT
  // is warm as it is in a long-running swarm; every measured run is a fresh client process, as is every local run
  bench(['--threads', String(o.threads)])
  for (const mode of modes) bench(['--bootstrap', bootstrap, ...modeArgs(mode)])
  const local = []
  const swarm = Object.fromEntries(modes.map(m => [m, []]))
  for (let run = 0; run < o.runs; run++) {
    local.push(bench(['--threads', String(o.threads)]))
    for (const mode of modes) swarm[mode].push(bench(['--bootstrap', bootstrap, ...modeArgs(mode)]))
    console.error(`run ${run + 1}/${o.runs}: local decode ${local.at(-1).decodeTokensPerSecond.toFixed(2)} tok/s, ` +
      modes.map(m => `swarm (push ${m}) ${swarm[m].at(-1).decodeTokensPerSecond.toFixed(2)} tok/s`).join(', '))
  }
  const first = swarm[modes[0]][0]
  const hops = first.route.length
  const ld = median(local.map(r => r.decodeTokensPerSecond))
  const lp = median(local.map(r => r.prefillTokensPerSecond))
  console.log(`model   ${o.model}`)
  console.log(`route   ${first.route.map(r => `[${r.blocks[0]}, ${r.blocks[1]})`).join(' -> ')} (${hops} nodes, --threads ${o.threads} each; local --threads ${o.threads})`)
  for (const mode of modes) {
    const sd = median(swarm[mode].map(r => r.decodeTokensPerSecond))
    const sp = median(swarm[mode].map(r => r.prefillTokensPerSecond))
    console.log(`server-to-server push ${mode}`)
    console.log(`  decode  local ${ld.toFixed(2)} tok/s   swarm ${sd.toFixed(2)} tok/s   ratio swarm/local ${(sd / ld).toFixed(3)}`)
    console.log(`  prefill local ${lp.toFixed(1)} tok/s   swarm ${sp.toFixed(1)} tok/s   ratio swarm/local ${(sp / lp).toFixed(3)}`)
    console.log(`  added per token ${(1000 / sd - 1000 / ld).toFixed(2)} ms, per hop ${((1000 / sd - 1000 / ld) / hops).toFixed(2)} ms (medians of ${o.runs} alternating runs)`)
    // each swarm run against the local run just before it: the machine's load drifts between runs, less within a pair
    const paired = swarm[mode].map((r, i) => r.decodeTokensPerSecond / local[i].decodeTokensPerSecond)
    console.log(`  decode ratio of each run to the local run before it: ${paired.map(x => x.toFixed(3)).join(', ')} (median ${median(paired).toFixed(3)})`)
  }
} finally {
  stopAll()
}
