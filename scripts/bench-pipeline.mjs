#!/usr/bin/env node
// The platform's share of a swarm's added time per token, with no libp2p at all: the swarm benchmark's three stages
// ([0, 3), [3, 5), [5, 8) of 8 blocks) in three child processes that pass each decode step on over Node's IPC channel
// (a pipe; the parent plays the client and spends --client-ms busy between tokens, as the client's LM head does),
// against the same three stages run back to back in one process with the same client work. Both use the WebAssembly
// kernels on one thread. Whatever the pipeline loses here (stages computing slower after idling while the others
// compute, wake-ups, the pipe) a swarm loses too, before any of its own messaging.
//
//   node scripts/bench-pipeline.mjs [--model PATH] [--steps 150] [--rounds 2] [--client-ms 5]
import { fork } from 'node:child_process'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const { BlockStack, openModel, selectBackend } = await import(join(root, 'packages/kernels/dist/index.js'))

const o = { model: join(root, '.cache/bench/tl8-q8_0.gguf'), steps: 150, rounds: 2, clientMs: 5 }
const argv = process.argv.slice(2)
const child = argv[0] === '--stage'
for (let i = child ? 3 : 0; i < argv.length; i++) {
  const a = argv[i]
  const v = () => { if (argv[i + 1] === undefined) throw new Error(`missing value for ${a}`); return argv[++i] }
  if (a === '--model') o.model = v()
  else if (a === '--steps') o.steps = Number(v())
  else if (a === '--rounds') o.rounds = Number(v())
  else if (a === '--client-ms') o.clientMs = Number(v())
  else { console.error(`unknown argument ${a}`); process.exit(2) }
}
// the first WARMUP_STEPS of each round are not counted
const WARMUP_STEPS = 10
if (!Number.isInteger(o.steps) || o.steps < 2 * WARMUP_STEPS) { console.error(`--steps takes an integer >= ${2 * WARMUP_STEPS}`); process.exit(2) }
if (!Number.isInteger(o.rounds) || o.rounds < 1) { console.error('--rounds takes an integer >= 1'); process.exit(2) }
if (!Number.isFinite(o.clientMs) || o.clientMs < 0) { console.error('--client-ms takes milliseconds >= 0'); process.exit(2) }

async function loadStage (source, [start, end]) {
  const selected = await selectBackend('auto', { threads: 1 })
  return await BlockStack.load(source, { start, end }, { ops: selected.ops, threads: selected.threads })
}
const input = dim => Float32Array.from({ length: dim }, (_, i) => Math.sin(i) * 0.3)

if (child) {
  // ---- one stage: a decode step per 'step' message, its compute time in the answer ----
  const range = argv.slice(1, 3).map(Number)
  const source = await openModel(o.model)
  const stack = await loadStage(source, range)
  await source.close()
  const h = input(source.config.dim)
  let cache = stack.createCache(o.steps + 1)
  process.on('message', message => {
    if (message === 'reset') {
      cache = stack.createCache(o.steps + 1)
      process.send({ reset: true })
      return
    }
    const t0 = performance.now()
    stack.forward(cache, h, 1)
    process.send({ ms: performance.now() - t0 })
  })
  process.on('disconnect', () => process.exit(0))
  process.send({ ready: true })
} else {
  const source = await openModel(o.model)
  const n = source.config.nLayers
  const cut = k => Math.round(k * n / 3)
  const ranges = [[0, cut(1)], [cut(1), cut(2)], [cut(2), n]]
  const median = v => { const s = [...v].sort((a, b) => a - b); return s[s.length >> 1] }
  const mean = v => v.reduce((a, b) => a + b, 0) / v.length
  const busy = ms => { const end = performance.now() + ms; while (performance.now() < end) { /* the client's work */ } }
  const report = (label, stages, tokens) => {
    const kept = v => v.slice(WARMUP_STEPS)
    console.log(`${label.padEnd(30)} stage compute median ${stages.map(v => median(kept(v)).toFixed(2)).join(' / ')} ms, mean ` +
      `${stages.map(v => mean(kept(v)).toFixed(2)).join(' / ')} ms; token median ${median(kept(tokens)).toFixed(2)} ms, mean ${mean(kept(tokens)).toFixed(2)} ms`)
    return median(kept(tokens))
  }
  console.log(`model ${o.model}: stages ${ranges.map(([a, b]) => `[${a}, ${b})`).join(' -> ')}, wasm backend, 1 thread each; ${o.steps} decode steps per round, client work ${o.clientMs} ms per token`)

  const stages = ranges.map(range => fork(fileURLToPath(import.meta.url), ['--stage', ...range.map(String), '--model', o.model, '--steps', String(o.steps)]))
  const answer = stage => new Promise(resolve => stage.once('message', resolve))
  await Promise.all(stages.map(answer))
  const locals = []
  for (const range of ranges) locals.push(await loadStage(source, range))
  await source.close()
  const h = input(source.config.dim)
  const summary = { pipeline: [], local: [] }
  try {
    for (let round = 1; round <= o.rounds; round++) {
      // three processes, one step each in turn
      await Promise.all(stages.map(stage => { const a = answer(stage); stage.send('reset'); return a }))
      let times = ranges.map(() => [])
      let tokens = []
      for (let s = 0; s < o.steps; s++) {
        const t0 = performance.now()
        for (let i = 0; i < stages.length; i++) {
          const a = answer(stages[i])
          stages[i].send('step')
          times[i].push((await a).ms)
        }
        busy(o.clientMs)
        tokens.push(performance.now() - t0)
      }
      summary.pipeline.push(report(`round ${round}  3 processes`, times, tokens))
      // the same stages back to back in this process
      const caches = locals.map(stack => stack.createCache(o.steps + 1))
      times = ranges.map(() => [])
      tokens = []
      for (let s = 0; s < o.steps; s++) {
        const t0 = performance.now()
        for (let i = 0; i < locals.length; i++) {
          const t = performance.now()
          locals[i].forward(caches[i], h, 1)
          times[i].push(performance.now() - t)
        }
        busy(o.clientMs)
        tokens.push(performance.now() - t0)
      }
      summary.local.push(report(`round ${round}  one process`, times, tokens))
    }
  } finally {
    for (const stage of stages) stage.disconnect()
  }
  const p = median(summary.pipeline)
  const l = median(summary.local)
  console.log(`token median of rounds: 3 processes ${p.toFixed(2)} ms, one process ${l.toFixed(2)} ms; ratio ${(l / p).toFixed(3)} (added ${(p - l).toFixed(2)} ms per token)`)
}
