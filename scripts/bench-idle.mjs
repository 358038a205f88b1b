#!/usr/bin/env node
// Why a pipeline stage computes slower than the same blocks in a local run: one process, no network at all. It
// times decode steps (T = 1) through the first blocks of a model, as one swarm node runs them, in three rhythms:
//   back to back      as a local run does (the thread never idles),
//   sleep between     as a swarm node does (it waits, asleep, while the other nodes compute),
//   spin between      the same gap spent busy instead of asleep.
// On the VM this project is measured on, the "sleep" rhythm makes the same steps slower on average (a tail of slow
// steps), "spin" does not: the cost of idling is the platform's, not the code's.
//
//   node scripts/bench-idle.mjs [--model PATH] [--blocks 3] [--gap-ms 25] [--steps 150] [--rounds 3]
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const { BlockStack, openModel, selectBackend } = await import(join(root, 'packages/kernels/dist/index.js'))

const o = { model: join(root, '.cache/bench/tl8-q8_0.gguf'), blocks: 3, gapMs: 25, steps: 150, rounds: 3 }
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]
  const v = () => { if (argv[i + 1] === undefined) throw new Error(`missing value for ${a}`); return argv[++i] }
  if (a === '--model') o.model = v()
  else if (a === '--blocks') o.blocks = Number(v())
  else if (a === '--gap-ms') o.gapMs = Number(v())
  else if (a === '--steps') o.steps = Number(v())
  else if (a === '--rounds') o.rounds = Number(v())
  else { console.error(`unknown argument ${a}`); process.exit(2) }
}
for (const [flag, value] of [['--blocks', o.blocks], ['--gap-ms', o.gapMs], ['--rounds', o.rounds]]) {
  if (!Number.isInteger(value) || value < 1) { console.error(`${flag} takes an integer >= 1`); process.exit(2) }
}
// the first WARMUP_STEPS of each rhythm are not counted
const WARMUP_STEPS = 10
if (!Number.isInteger(o.steps) || o.steps < 2 * WARMUP_STEPS) { console.error(`--steps takes an integer >= ${2 * WARMUP_STEPS}`); process.exit(2) }

const source = await openModel(o.model)
if (o.blocks > source.config.nLayers) {
  console.error(`--blocks ${o.blocks}: ${o.model} has ${source.config.nLayers} blocks`)
  process.exit(2)
}
const selected = await selectBackend('auto', { threads: 1 })
const range = { start: 0, end: o.blocks }
const stack = await BlockStack.load(source, range, { ops: selected.ops, executor: selected.executor, threads: selected.threads })
const dim = source.config.dim
await source.close()
const x = Float32Array.from({ length: dim }, (_, i) => Math.sin(i) * 0.1)

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const spin = ms => { const t = performance.now(); while (performance.now() - t < ms); }
const stats = values => {
  const s = [...values].sort((a, b) => a - b)
  const mean = s.reduce((a, b) => a + b, 0) / s.length
  return { median: s[s.length >> 1], p90: s[Math.floor(s.length * 0.9)], mean }
}

const rhythms = { 'back to back': async () => {}, 'sleep between': async () => { await sleep(o.gapMs) }, 'spin between': async () => { spin(o.gapMs) } }
const all = Object.fromEntries(Object.keys(rhythms).map(k => [k, []]))
console.log(`model ${o.model}: blocks [0, ${o.blocks}), ${selected.name ?? 'auto'} backend, 1 thread; ${o.steps} decode steps per rhythm and round, gap ${o.gapMs} ms`)
for (let round = 0; round < o.rounds; round++) {
  for (const [name, gap] of Object.entries(rhythms)) {
    const cache = stack.createCache(o.steps + 8, range)
    const times = []
    for (let i = 0; i < o.steps; i++) {
      await gap()
      const t0 = performance.now()
      stack.forward(cache, x, 1, range)
      times.push(performance.now() - t0)
    }
    cache.dispose()
    all[name].push(...times.slice(WARMUP_STEPS))
    const s = stats(times.slice(WARMUP_STEPS))
    console.log(`round ${round + 1}  ${name.padEnd(13)}  step median ${s.median.toFixed(2)} ms  p90 ${s.p90.toFixed(2)} ms  mean ${s.mean.toFixed(2)} ms`)
  }
}
console.log('all rounds:')
for (const name of Object.keys(rhythms)) {
  const s = stats(all[name])
  console.log(`  ${name.padEnd(13)}  step median ${s.median.toFixed(2)} ms  p90 ${s.p90.toFixed(2)} ms  mean ${s.mean.toFixed(2)} ms`)
}
process.exit(0)
