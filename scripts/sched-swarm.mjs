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
import { parseArgs } from 'node:util'
import { swarmProcesses } from './swarm-processes.mjs'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const swarmCli = join(root, 'packages/client/dist/cli.js')

let args
try {
  args = parseArgs({ options: { model: { type: 'string' }, threads: { type: 'string' }, seconds: { type: 'string' }, 'gen-tokens': { type: 'string' } } }).values
} catch (err) {
  console.error(err.message)
  process.exit(2)
}
const o = {
  model: args.model ?? join(root, '.cache/bench/tinyllama-8l-q8_0.gguf'),
  threads: Number(args.threads ?? 1),
  seconds: Number(args.seconds ?? 6),
  genTokens: Number(args['gen-tokens'] ?? 400)
}
for (const [flag, value] of [['--threads', o.threads], ['--seconds', o.seconds], ['--gen-tokens', o.genTokens]]) {
  if (!Number.isInteger(value) || value < 1) { console.error(`${flag} takes an integer >= 1`); process.exit(2) }
}
if (!existsSync(o.model)) { console.error(`no model at ${o.model} (npm run bench:swarm writes the default one)`); process.exit(1) }

if (!existsSync('/proc/self/task')) { console.error('this script reads /proc/PID/task/TID/schedstat: Linux only'); process.exit(1) }
const tmp = mkdtempSync(join(tmpdir(), 'sched-swarm-'))

let client
const { startSwarm } = swarmProcesses({ stderr: 'ignore' })
process.on('exit', () => { client?.kill('SIGKILL'); rmSync(tmp, { recursive: true, force: true }) })

const benchArgs = (bootstrap, prompt, gen) => [swarmCli, 'bench', '--bootstrap', bootstrap, '--model', o.model,
  '--prompt-tokens', String(prompt), '--gen-tokens', String(gen), '--json']

const roles = new Map() // pid -> name
const { dht, nodes } = await startSwarm(o.model, o.threads)
roles.set(dht.pid, 'dht peer')
for (const node of nodes) roles.set(node.pid, `node [${node.blocks[0]}, ${node.blocks[1]})`)
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
// the client's decode steps (one position each); the window must lie inside the decode, and its tokens are the steps
// that began in it
const decodeSteps = readFileSync(`${tracePrefix}.${client.pid}`, 'utf8').split('\n').map(l => l.split(' '))
  .filter(([, event, , position]) => event === 'client-step' && Number(position) >= 4)
  .map(([t]) => Number(BigInt(t)) / 1e6)
if (decodeSteps.length === 0 || decodeSteps[0] > before.at) {
  console.error('the decode had not begun when the window opened (the client took over 4 s to load, route and prefill)')
  process.exit(1)
}
if (decodeSteps[decodeSteps.length - 1] < after.at) { console.error('the decode ended inside the window; raise --gen-tokens'); process.exit(1) }
const tokens = decodeSteps.filter(t => t >= before.at && t < after.at).length
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
console.log(`${(windowMs / 1000).toFixed(1)} s of a decode through ${nodes.map(n => roles.get(n.pid)).join(' -> ')} (--threads ${o.threads}): ${tokens} tokens, ` +
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
