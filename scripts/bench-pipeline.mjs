#!/usr/bin/env node
// The platform's and libp2p's shares of a swarm's added time per token. The swarm benchmark's three stages ([0, 3),
// [3, 5), [5, 8) of 8 blocks) run in three child processes chained as a swarm with server-to-server push is (the
// parent, playing the client, sends a step's hidden states to the first stage, each stage sends its output straight
// to the next, the last one back to the parent), over one of two transports:
// - tcp: plain loopback TCP sockets: the same 8 KB of f32 hidden states per message, but no encryption, no muxer, no
//   framing beyond a fixed size, no validation. Whatever this pipeline loses (stages computing slower after idling
//   while the others compute, wake-ups, the sockets) a swarm loses too, before any cost of its own stack.
// - libp2p: the swarm's libp2p stack (createSwarmHost: TCP, noise, yamux) with length-prefixed frames on one stream
//   per hop (lpStream, as nodes use it), still without any message of the swarm's protocol (no msgpack, validation,
//   sessions, results to the client). The difference to tcp is what libp2p costs; the swarm's difference to this is
//   what the swarm protocol costs.
// The parent spends --client-ms busy between tokens, as the client's LM head does. Against it, the same three stages
// back to back in one process with the same client work. All use the WebAssembly kernels on one thread. Each round
// runs a pipeline and then the one-process run, so the machine's noise falls on both alike; with --transport both
// (the default) all rounds over tcp come first, then all over libp2p, each transport's stages running only in its turn.
//
//   node scripts/bench-pipeline.mjs [--model PATH] [--steps 150] [--rounds 2] [--client-ms 5] [--transport tcp|libp2p|both]
import { fork } from 'node:child_process'
import net from 'node:net'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const { BlockStack, openModel, selectBackend } = await import(join(root, 'packages/kernels/dist/index.js'))

const o = { model: join(root, '.cache/bench/tl8-q8_0.gguf'), steps: 150, rounds: 2, clientMs: 5, transport: 'both' }
const argv = process.argv.slice(2)
const child = argv[0] === '--stage'
for (let i = child ? 4 : 0; i < argv.length; i++) {
  const a = argv[i]
  const v = () => { if (argv[i + 1] === undefined) throw new Error(`missing value for ${a}`); return argv[++i] }
  if (a === '--model') o.model = v()
  else if (a === '--steps') o.steps = Number(v())
  else if (a === '--rounds') o.rounds = Number(v())
  else if (a === '--client-ms') o.clientMs = Number(v())
  else if (a === '--transport') o.transport = v()
  else { console.error(`unknown argument ${a}`); process.exit(2) }
}
// the first WARMUP_STEPS of each round are not counted
const WARMUP_STEPS = 10
if (!Number.isInteger(o.steps) || o.steps < 2 * WARMUP_STEPS) { console.error(`--steps takes an integer >= ${2 * WARMUP_STEPS}`); process.exit(2) }
if (!Number.isInteger(o.rounds) || o.rounds < 1) { console.error('--rounds takes an integer >= 1'); process.exit(2) }
if (!Number.isFinite(o.clientMs) || o.clientMs < 0) { console.error('--client-ms takes milliseconds >= 0'); process.exit(2) }
if (!['tcp', 'libp2p', 'both'].includes(o.transport)) { console.error('--transport takes tcp, libp2p or both'); process.exit(2) }
const transports = o.transport === 'both' ? ['tcp', 'libp2p'] : [o.transport]
async function loadStage (source, [start, end]) {
  const selected = await selectBackend('auto', { threads: 1 })
  return await BlockStack.load(source, { start, end }, { ops: selected.ops, threads: selected.threads })
}
const input = dim => Float32Array.from({ length: dim }, (_, i) => Math.sin(i) * 0.3)

const PIPE_PROTOCOL = '/swarm-bench/pipeline/1.0.0'
const bytesOf = x => new Uint8Array(x.buffer, x.byteOffset, x.byteLength)
/** a fresh f32 copy of a frame's bytes */
const toF32 = bytes => new Float32Array(new Uint8Array(bytes).buffer)

/**
 * This process's end of the pipeline over `transport`: it calls onFrame with every frame of `bytes` bytes sent to
 * `addr` (a TCP port, or a libp2p multiaddr); connect(addr) returns a sender whose send(x) writes x as one frame.
 */
async function endpoint (transport, bytes, onFrame) {
  if (transport === 'libp2p') {
    // the swarm's libp2p host and the length-prefixed frames its nodes use
    const { createSwarmHost } = await import(join(root, 'packages/protocol/dist/index.js'))
    const { lpStream } = await import(join(root, 'packages/node/node_modules/@libp2p/utils/dist/src/index.js'))
    const { multiaddr } = await import(join(root, 'packages/protocol/node_modules/@multiformats/multiaddr/dist/src/index.js'))
    const host = await createSwarmHost({ listen: ['/ip4/127.0.0.1/tcp/0'] })
    await host.handle(PIPE_PROTOCOL, stream => {
      const lp = lpStream(stream, { maxDataLength: bytes })
      void (async () => { for (;;) onFrame(toF32((await lp.read()).subarray())) })().catch(() => {})
    })
    return {
      addr: host.getMultiaddrs()[0].toString(),
      connect: async addr => {
        const lp = lpStream(await host.dialProtocol(multiaddr(addr), PIPE_PROTOCOL))
        return { send: x => { void lp.write(bytesOf(x)).catch(() => {}) } }
      },
      // closes the streams too
      stop: async () => { await host.stop() }
    }
  }
  const sockets = []
  const server = net.createServer(socket => {
    socket.setNoDelay(true)
    // fixed-size frames
    let pending = Buffer.alloc(0)
    socket.on('data', data => {
      pending = pending.length === 0 ? data : Buffer.concat([pending, data])
      while (pending.length >= bytes) {
        onFrame(toF32(pending.subarray(0, bytes)))
        pending = pending.subarray(bytes)
      }
    })
  })
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    addr: server.address().port,
    connect: async port => {
      const socket = net.connect(port, '127.0.0.1')
      socket.setNoDelay(true)
      sockets.push(socket)
      await new Promise(resolve => socket.once('connect', resolve))
      return { send: x => { socket.write(bytesOf(x)) } }
    },
    stop: async () => {
      for (const socket of sockets) socket.destroy()
      server.close()
    }
  }
}

if (child) {
  // ---- one stage: takes its input frames, runs a decode step per frame, sends the output on to `next` ----
  const range = argv.slice(1, 3).map(Number)
  const transport = argv[3]
  const source = await openModel(o.model)
  const stack = await loadStage(source, range)
  await source.close()
  const bytes = source.config.dim * 4
  let cache = stack.createCache(o.steps + 1)
  let times = []
  let next
  const onFrame = x => {
    const t0 = performance.now()
    const out = stack.forward(cache, x, 1)
    times.push(performance.now() - t0)
    next.send(out)
  }
  const end = await endpoint(transport, bytes, onFrame)
  process.send({ addr: end.addr })
  process.on('message', message => {
    if (message.next !== undefined) {
      void end.connect(message.next).then(c => { next = c; process.send({ connected: true }) })
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

  const answer = stage => new Promise(resolve => stage.once('message', resolve))
  let onResult
  /** starts the three stage processes chained over `transport`; returns them and the sender to the first one */
  async function startPipeline (transport) {
    const stages = ranges.map(range => fork(fileURLToPath(import.meta.url), ['--stage', ...range.map(String), transport, '--model', o.model, '--steps', String(o.steps)]))
    const addrs = (await Promise.all(stages.map(answer))).map(m => m.addr)
    // the last stage sends back to this process
    const end = await endpoint(transport, source.config.dim * 4, x => onResult(x))
    const nextAddrs = [...addrs.slice(1), end.addr]
    await Promise.all(stages.map((stage, i) => { const a = answer(stage); stage.send({ next: nextAddrs[i] }); return a }))
    const first = await end.connect(addrs[0])
    return {
      stages,
      first,
      stop: async () => {
        await end.stop()
        for (const stage of stages) stage.disconnect()
      }
    }
  }
  const locals = []
  for (const range of ranges) locals.push(await loadStage(source, range))
  await source.close()
  const h = input(source.config.dim)
  // the event loop turns between tokens, so libp2p's connection monitor keeps getting its pings answered
  const yieldLoop = () => new Promise(resolve => setImmediate(resolve))
  const results = []
  // one transport at a time (no idle stage processes of the other), its rounds alternating with one-process rounds
  for (const transport of transports) {
    const pipeline = await startPipeline(transport)
    const summary = { pipeline: [], local: [] }
    try {
      for (let round = 1; round <= o.rounds; round++) {
        // three processes, each step passed down the chain and back
        let tokens = []
        for (let s = 0; s < o.steps; s++) {
          const t0 = performance.now()
          const result = new Promise(resolve => { onResult = resolve })
          pipeline.first.send(h)
          await result
          busy(o.clientMs)
          tokens.push(performance.now() - t0)
        }
        let times = (await Promise.all(pipeline.stages.map(stage => { const a = answer(stage); stage.send('reset'); return a }))).map(m => m.times)
        summary.pipeline.push(report(`round ${round}  3 processes, ${transport}`, times, tokens))
        // the same stages back to back in this process
        const caches = locals.map(stack => stack.createCache(o.steps + 1))
        times = ranges.map(() => [])
        tokens = []
        for (let s = 0; s < o.steps; s++) {
          await yieldLoop()
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
      await pipeline.stop()
    }
    results.push({ transport, ...summary })
  }
  for (const { transport, pipeline, local } of results) {
    const p = median(pipeline)
    const l = median(local)
    const paired = median(local.map((x, i) => x / pipeline[i]))
    console.log(`${transport.padEnd(6)}: token median of rounds: 3 processes ${p.toFixed(2)} ms, one process ${l.toFixed(2)} ms; ratio ${(l / p).toFixed(3)} (added ${(p - l).toFixed(2)} ms per token); median of the rounds' own ratios ${paired.toFixed(3)}`)
  }
}
