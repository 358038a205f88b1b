#!/usr/bin/env node
// Where a swarm decode token's time goes: reads the files a traced run leaves (SWARM_TRACE=PREFIX set for the client
// and the nodes, one PREFIX.<pid> file per process, see packages/protocol/src/trace.ts) and splits each decode token
// (a client step of one position) into its stages along the route, in order: the client's send, each one-way message,
// each node's parsing and decoding, compute, encoding and push, and the client's own work
// between tokens (final norm, LM head, sampling, next embedding). Prints the median and mean of every stage.
//
//   SWARM_TRACE=/tmp/t/run npm run bench:swarm -- --model .cache/bench/tl8-q8_0.gguf --runs 1
//   node scripts/trace-swarm.mjs /tmp/t/run
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'

const prefix = process.argv[2]
if (prefix === undefined) { console.error('usage: node scripts/trace-swarm.mjs PREFIX (the SWARM_TRACE of the traced run)'); process.exit(2) }
if (!existsSync(dirname(prefix))) { console.error(`no directory ${dirname(prefix)} (PREFIX is the SWARM_TRACE of the traced run)`); process.exit(1) }
const files = readdirSync(dirname(prefix)).filter(f => f.startsWith(`${basename(prefix)}.`)).map(f => join(dirname(prefix), f))
if (files.length === 0) { console.error(`no trace files ${prefix}.<pid>`); process.exit(1) }

// every event: { t (ms on the shared clock), name, position, node }. Nodes name their events name@<first block of
// their span>; the client names its sends and receives send@/recv@<first block of the span>, its steps without one.
const events = []
for (const file of files) {
  for (const [i, line] of readFileSync(file, 'utf8').split('\n').entries()) {
    if (line === '') continue
    const [t, event, session, position, extra] = line.split(' ')
    if (!/^\d+$/.test(t ?? '') || event === undefined || session === undefined || !/^\d+$/.test(position ?? '') || extra !== undefined) {
      console.error(`${file}:${i + 1}: not a trace line (time event session position): ${JSON.stringify(line.slice(0, 80))}`)
      process.exit(1)
    }
    const [name, block] = event.split('@')
    const node = name === 'send' || name === 'recv' ? `client:${block}` : block ?? 'client'
    events.push({ t: Number(BigInt(t)) / 1e6, name, session, position: Number(position), node })
  }
}
events.sort((a, b) => a.t - b.t)
const steps = events.filter(e => e.name === 'client-step')
const starts = [...new Set(events.filter(e => e.name === 'compute-start').map(e => Number(e.node)))].sort((a, b) => a - b).map(String)
if (steps.length === 0 || starts.length === 0) { console.error('the trace holds no client steps or no node steps'); process.exit(1) }

// stages of one token along the route; each is [label, from event, to event] ('name node')
const stages = [['client send', 'client-step client', `send client:${starts[0]}`], [`message client -> [${starts[0]}`, `send client:${starts[0]}`, `frame ${starts[0]}`], ['', `frame ${starts[0]}`, `compute-start ${starts[0]}`]]
starts.forEach((s, i) => {
  if (i > 0) {
    stages.push([`message [${starts[i - 1]} -> [${s} (push)`, `push-sent ${starts[i - 1]}`, `push-frame ${s}`])
    stages.push(['', `push-frame ${s}`, `compute-start ${s}`])
  }
  stages.push([`[${s}: compute`, `compute-start ${s}`, `compute-end ${s}`])
  if (i < starts.length - 1) stages.push([`[${s}: encode and push`, `compute-end ${s}`, `push-sent ${s}`])
})
const last = starts[starts.length - 1]
stages.push([`message [${last} -> client (result, encoding included)`, `compute-end ${last}`, `recv client:${last}`])
stages.push(['client: last receive to step end', `recv client:${last}`, 'client-done client'])
stages.push(['client: between tokens (LM head, sampling, embedding)', 'client-done client', 'next client-step client'])
for (const s of stages) if (s[0] === '') s[0] = `[${s[1].split(' ')[1]}: parse and decode`

const rows = stages.map(() => [])
const totals = []
for (let i = 0; i < steps.length - 1; i++) {
  const step = steps[i]
  const next = steps[i + 1]
  // decode tokens only: a step of one position followed by the next position
  if (next.position !== step.position + 1) continue
  const at = new Map([['next client-step client', next.t]])
  for (const e of events) {
    if (e.t < step.t || e.t > next.t || e.position !== step.position) continue
    const key = `${e.name} ${e.node}`
    if (!at.has(key)) at.set(key, e.t)
  }
  if (stages.some(([, a, b]) => !at.has(a) || !at.has(b))) continue
  stages.forEach(([, a, b], k) => rows[k].push(at.get(b) - at.get(a)))
  totals.push(next.t - step.t)
}
if (totals.length === 0) { console.error('no complete decode token in the trace (is every node traced, with push on?)'); process.exit(1) }
const median = v => { const s = [...v].sort((a, b) => a - b); return s[s.length >> 1] }
const mean = v => v.reduce((a, b) => a + b, 0) / v.length
console.log(`${totals.length} decode tokens through ${starts.map(s => `[${s}`).join(' -> ')}; ms per token`)
console.log(`${'stage'.padEnd(56)}${'median'.padStart(8)}${'mean'.padStart(8)}`)
stages.forEach(([label], k) => console.log(`${label.padEnd(56)}${median(rows[k]).toFixed(3).padStart(8)}${mean(rows[k]).toFixed(3).padStart(8)}`))
const computeRows = stages.map(([label], k) => label.endsWith(': compute') ? k : -1).filter(k => k >= 0)
const messageRows = stages.map(([label], k) => label.startsWith('message') ? k : -1).filter(k => k >= 0)
const sumOf = ks => totals.map((_, j) => ks.reduce((a, k) => a + rows[k][j], 0))
console.log(`${'token (client step to next client step)'.padEnd(56)}${median(totals).toFixed(3).padStart(8)}${mean(totals).toFixed(3).padStart(8)}`)
console.log(`${'  of which node compute'.padEnd(56)}${median(sumOf(computeRows)).toFixed(3).padStart(8)}${mean(sumOf(computeRows)).toFixed(3).padStart(8)}`)
console.log(`${'  of which one-way messages'.padEnd(56)}${median(sumOf(messageRows)).toFixed(3).padStart(8)}${mean(sumOf(messageRows)).toFixed(3).padStart(8)}`)
