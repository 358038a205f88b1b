#!/usr/bin/env node
// The platform's share of a swarm's added time per token, with no libp2p at all: the swarm benchmark's three stages
// ([0, 3), [3, 5), [5, 8) of 8 blocks) in three child processes chained as a swarm with server-to-server push is (the
// parent, playing the client, sends a step's hidden states to the first stage, each stage sends its output straight
// to the next, the last one back to the parent) over plain loopback TCP sockets: the same 8 KB of f32 hidden states
// per message, but no encryption, no muxer, no framing beyond a fixed size, no validation. The parent spends
// --client-ms busy between tokens, as the client's LM head does. Against it, the same three stages back to back in
// one process with the same client work. Both use the WebAssembly kernels on one thread. Whatever this pipeline loses
// (stages computing slower after idling while the others compute, wake-ups, the sockets) a swarm loses too, before
// any cost of its own stack.
//
//   node scripts/bench-pipeline.mjs [--model PATH] [--steps 150] [--rounds 2] [--client-ms 5]
import { fork } from 'node:child_process'
import net from 'node:net'
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

/** reads fixed-size frames from a socket and calls onFrame with each (a fresh copy) */
function frames (socket, bytes, onFrame) {
  let pending = Buffer.alloc(0)
  socket.on('data', data => {
    pending = pending.length === 0 ? data : Buffer.concat([pending, data])
    while (pending.length >= bytes) {
      onFrame(new Float32Array(new Uint8Array(pending.subarray(0, bytes)).buffer))
      pending = pending.subarray(bytes)
    }
  })
}
const send = (socket, x) => { socket.write(new Uint8Array(x.buffer, x.byteOffset, x.byteLength)) }

if (child) {
  // ---- one stage: listens for its input, runs a decode step per frame, sends the output on to `next` ----
  const range = argv.slice(1, 3).map(Number)
  const source = await openModel(o.model)
  const stack = await loadStage(source, range)
  await source.close()
  const bytes = source.config.dim * 4
  let cache = stack.createCache(o.steps + 1)
  let times = []
  let next
  const server = net.createServer(socket => {
    socket.setNoDelay(true)
    frames(socket, bytes, x => {
      const t0 = performance.now()
      const out = stack.forward(cache, x, 1)
      times.push(performance.now() - t0)
      send(next, out)
    })
  }).listen(0, '127.0.0.1', () => { process.send({ port: server.address().port }) })
  process.on('message', message => {
    if (message.next !== undefined) {
      next = net.connect(message.next, '127.0.0.1', () => { process.send({ connected: true }) })
      next.setNoDelay(true)
    } else if (message === 'reset') {
      process.send({ times })
      cache = stack.createCache(o.steps + 1)
      times = []
    }
  })
  process.on('disconnect', () => process.exit(0))
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
  const ports = (await Promise.all(stages.map(answer))).map(m => m.port)
  // the last stage sends back to this process
  let onResult
  const back = net.createServer(socket => { socket.setNoDelay(true); frames(socket, source.config.dim * 4, x => onResult(x)) })
  await new Promise(resolve => back.listen(0, '127.0.0.1', resolve))
  const nextPorts = [...ports.slice(1), back.address().port]
  await Promise.all(stages.map((stage, i) => { const a = answer(stage); stage.send({ next: nextPorts[i] }); return a }))
  const first = net.connect(ports[0], '127.0.0.1')
  first.setNoDelay(true)
  await new Promise(resolve => first.once('connect', resolve))
  const locals = []
  for (const range of ranges) locals.push(await loadStage(source, range))
  await source.close()
  const h = input(source.config.dim)
  const summary = { pipeline: [], local: [] }
  try {
    for (let round = 1; round <= o.rounds; round++) {
      // three processes, each step passed down the chain and back
      let tokens = []
      for (let s = 0; s < o.steps; s++) {
        const t0 = performance.now()
        const result = new Promise(resolve => { onResult = resolve })
        send(first, h)
        await result
        busy(o.clientMs)
        tokens.push(performance.now() - t0)
      }
      let times = (await Promise.all(stages.map(stage => { const a = answer(stage); stage.send('reset'); return a }))).map(m => m.times)
      summary.pipeline.push(report(`round ${round}  3 processes`, times, tokens))
      // the same stages back to back in this process
      const caches = locals.map(stack => stack.createCache(o.steps + 1))
      times = ranges.map(() => [])
      tokens = []
      for (let s = 0; s < o.steps; s++) {
        const t0 = performance.now()
        let x = h
        for (let i = 0; i < locals.length; i++) {
          const t = performance.now()
          x = locals[i].forward(caches[i], x, 1)
          times[i].push(performance.now() - t)
        }
        busy(o.clientMs)
        tokens.push(performance.now() - t0)
      }
      summary.local.push(report(`round ${round}  one process`, times, tokens))
    }
  } finally {
    first.destroy()
    back.close()
    for (const stage of stages) stage.disconnect()
  }
  const p = median(summary.pipeline)
  const l = median(summary.local)
  const paired = median(summary.local.map((x, i) => x / summary.pipeline[i]))
  console.log(`token median of rounds: 3 processes ${p.toFixed(2)} ms, one process ${l.toFixed(2)} ms; ratio ${(l / p).toFixed(3)} (added ${(p - l).toFixed(2)} ms per token); median of the rounds' own ratios ${paired.toFixed(3)}`)
}
