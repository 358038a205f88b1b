#!/usr/bin/env node
// Where a swarm decode token's CPU time goes and how long each process waits for a CPU. While a 3-node loopback swarm
// decodes, reads the kernel's per-thread scheduler statistics (/proc/PID/task/TID/schedstat: time on a CPU, time
// runnable but waiting for one, and time slices) of every process of the swarm (the DHT peer, each node, the client)
// at the start and the end of a window of a few seconds, and prints them per decode token:
//   - CPU time of its main thread and of its other threads (V8's GC and compiler threads, libuv's pool);
//   - how long its main thread was runnable but waited for a CPU (a message came or a timer fired while both CPUs
//     were busy, or another thread preempted it), and how many time slices it ran in.
// Only one node computes at any moment, so a node's wait for a CPU while it computes delays the token by as much.
// Tokens: the client's decode steps inside the window, from its step trace (SWARM_TRACE, CLOCK_MONOTONIC).
// Linux only (it reads /proc).
//
//   node scripts/sched-swarm.mjs [--model PATH] [--threads 1] [--seconds 6] [--gen-tokens 400]
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import os, { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { swarmProcesses } from './swarm-processes.mjs'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const swarmCli = join(root, 'packages/client/dist/cli.js')
const nodeCli = join(root, 'packages/node/dist/cli.js')

const o = { model: join(root, '.cache/bench/tinyllama-8l-q8_0.gguf'), threads: 1, seconds: 6, genTokens: 400 }
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]
  const v = () => { if (argv[i + 1] === undefined) throw new Error(`missing value for ${a}`); return argv[++i] }
  if (a === '--model') o.model = v()
  else if (a === '--threads') o.threads = Number(v())
  else if (a === '--seconds') o.seconds = Number(v())
  else if (a === '--gen-tokens') o.genTokens = Number(v())
  else { console.error(`unknown argument ${a}`); process.exit(2) }
}
for (const [flag, value] of [['--threads', o.threads], ['--seconds', o.seconds], ['--gen-tokens', o.genTokens]]) {
  if (!Number.isInteger(value) || value < 1) { console.error(`${flag} takes an integer >= 1`); process.exit(2) }
}
if (!existsSync(o.model)) { console.error(`no model at ${o.model} (npm run bench:swarm writes the default one)`); process.exit(1) }

const tmp = mkdtempSync(join(tmpdir(), 'sched-swarm-'))
if (!existsSync('/proc/self/task')) { console.error('this script reads /proc/PID/task/TID/schedstat: Linux only'); process.exit(1) }

let client
const { start } = swarmProcesses({ stderr: 'ignore' })
process.on('exit', () => { client?.kill('SIGKILL'); rmSync(tmp, { recursive: true, force: true }) })

const benchArgs = (bootstrap, prompt, gen) => [swarmCli, 'bench', '--bootstrap', bootstrap, '--model', o.model,
  '--prompt-tokens', String(prompt), '--gen-tokens', String(gen), '--json']

const roles = new Map() // pid -> name
const dht = await start(['dht', '--json'])
roles.set(dht.pid, 'dht peer')
const info = spawnSync(process.execPath, [nodeCli, 'inspect', '--model', o.model, '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 })
const nLayers = JSON.parse(info.stdout).config.nLayers
const cut = k => Math.round(k * nLayers / 3)
for (const [a, b] of [[0, cut(1)], [cut(1), cut(2)], [cut(2), nLayers]]) {
  const node = await start(['serve', '--model', o.model, '--blocks', `${a}:${b}`, '--bootstrap', dht.addrs[0], '--threads', String(o.threads), '--json'])
  roles.set(node.pid, `node [${a}, ${b})`)
}
// one discarded run warms the nodes, as bench:swarm does
const warm = spawnSync(process.execPath, benchArgs(dht.addrs[0], 128, 64), { encoding: 'utf8' })
if (warm.status !== 0) { console.error(`warm-up run failed: ${warm.stderr}`); process.exit(1) }

// the measured client: the window starts once it has loaded, routed and prefilled, and ends before its decode does
// the client traces its steps (CLOCK_MONOTONIC, as process.hrtime here) so that the window's tokens can be counted
const tracePrefix = join(tmp, 'client')
client = spawn(process.execPath, benchArgs(dht.addrs[0], 4, o.genTokens), { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, SWARM_TRACE: tracePrefix } })
roles.set(client.pid, 'client')
let clientOut = ''
client.stdout.setEncoding('utf8').on('data', chunk => { clientOut += chunk })
const clientExit = new Promise(resolveExit => client.once('exit', resolveExit))
await new Promise(resolveWait => setTimeout(resolveWait, 4000))
/** every thread of every process of the swarm: its role, ns on a CPU, ns runnable but waiting for one, time slices */
const snapshot = () => {
  const rows = []
  for (const [pid, role] of roles) {
    let tids = []
    try { tids = readdirSync(`/proc/${pid}/task`) } catch { continue }
    for (const tid of tids) {
      try {
        const [run, wait, slices] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(' ').map(Number)
        rows.push({ key: `${pid}/${tid}`, role: Number(tid) === pid ? role : `${role} other threads`, run, wait, slices })
      } catch {}
    }
  }
  return { at: Number(process.hrtime.bigint()) / 1e6, rows }
}
const before = snapshot()
await new Promise(resolveWait => setTimeout(resolveWait, o.seconds * 1000))
const after = snapshot()
const clientCode = await clientExit
if (clientCode !== 0) { console.error(`the client failed (exit ${clientCode})`); process.exit(1) }
const result = JSON.parse(clientOut.trim().split('\n').pop())
// decode steps of the client (one position each) that began inside the window
const steps = readFileSync(`${tracePrefix}.${client.pid}`, 'utf8').split('\n').map(l => l.split(' '))
  .filter(([, event, , position]) => event === 'client-step' && Number(position) >= 4)
  .map(([t]) => Number(BigInt(t)) / 1e6)
  .filter(t => t >= before.at && t < after.at)
if (steps.length < 10) { console.error(`only ${steps.length} decode steps in the window; raise --gen-tokens`); process.exit(1) }
const tokens = steps.length
const windowMs = after.at - before.at
// the same model in one process, for the gap
const local = spawnSync(process.execPath, [swarmCli, 'bench', '--model', o.model, '--threads', String(o.threads), '--prompt-tokens', '4',
  '--gen-tokens', '200', '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 })
if (local.status !== 0) { console.error(`the local run failed: ${local.stderr}`); process.exit(1) }
const localMs = 1000 / JSON.parse(local.stdout.trim().split('\n').pop()).decodeTokensPerSecond

const sums = new Map()
for (const row of after.rows) {
  const was = before.rows.find(r => r.key === row.key) ?? { run: 0, wait: 0, slices: 0 }
  const sum = sums.get(row.role) ?? { run: 0, wait: 0, slices: 0 }
  sum.run += (row.run - was.run) / 1e6
  sum.wait += (row.wait - was.wait) / 1e6
  sum.slices += row.slices - was.slices
  sums.set(row.role, sum)
}
const perToken = ms => (ms / tokens).toFixed(2)
const nodes = [...roles.values()].filter(r => r.startsWith('node'))
console.log(`${(windowMs / 1000).toFixed(1)} s of a decode through ${nodes.join(' -> ')} (--threads ${o.threads}): ${tokens} tokens, ` +
  `${(windowMs / tokens).toFixed(2)} ms each (the whole run: ${result.decodeTokensPerSecond.toFixed(2)} tok/s); figures in ms per token`)
console.log('process              CPU main thread  waits for a CPU  slices   CPU other threads  their waits')
let cpu = 0
for (const role of roles.values()) {
  const main = sums.get(role) ?? { run: 0, wait: 0, slices: 0 }
  const other = sums.get(`${role} other threads`) ?? { run: 0, wait: 0, slices: 0 }
  cpu += main.run + other.run
  console.log(`${role.padEnd(20)}${perToken(main.run).padStart(16)}${perToken(main.wait).padStart(17)}${(main.slices / tokens).toFixed(1).padStart(8)}` +
    `${perToken(other.run).padStart(20)}${perToken(other.wait).padStart(13)}`)
}
console.log(`all of them: ${perToken(cpu)} ms of CPU per token of ${(windowMs / tokens).toFixed(2)} ms (${os.cpus().length} CPUs); ` +
  `the same model in one process, right after: ${localMs.toFixed(2)} ms per token (--threads ${o.threads})`)

process.exit(0)
