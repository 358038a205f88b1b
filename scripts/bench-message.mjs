#!/usr/bin/env node
// What one swarm message costs on this machine, apart from any model: the one-way latency of a frame the size of a
// decode step's hidden states (2048 f32 + envelope, 8300 bytes) between two processes on loopback, through the
// swarm's libp2p stack (TCP + noise + yamux + length prefix, as nodes use it) and through a raw TCP socket, with the
// sender idle before each frame for each of --gaps ms: 1 ms (the stack stays warm) and the 10 to 25 ms a swarm node
// sleeps while the other nodes compute.
// The receiver takes the time from a timestamp in the frame (both processes read the same clock).
//
//   node scripts/bench-message.mjs [--frames 300] [--bytes 8300] [--gaps 1,10,25]
import { fork } from 'node:child_process'
import net from 'node:net'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const { createSwarmHost } = await import(join(root, 'packages/protocol/dist/index.js'))
const { lpStream } = await import(join(root, 'packages/node/node_modules/@libp2p/utils/dist/src/index.js'))
const { multiaddr } = await import(join(root, 'packages/protocol/node_modules/@multiformats/multiaddr/dist/src/index.js'))

const PROTOCOL = '/swarm-bench/message/1.0.0'
const o = { frames: 300, bytes: 8300, gaps: [1, 10, 25] }
const argv = process.argv.slice(2)
const role = argv[0] === '--receiver' ? argv[1] : undefined
for (let i = role === undefined ? 0 : 2; i < argv.length; i++) {
  const a = argv[i]
  const v = () => { if (argv[i + 1] === undefined) throw new Error(`missing value for ${a}`); return argv[++i] }
  if (a === '--frames') o.frames = Number(v())
  else if (a === '--bytes') o.bytes = Number(v())
  else if (a === '--gaps') o.gaps = v().split(',').map(Number)
  else { console.error(`unknown argument ${a}`); process.exit(2) }
}
// without a gap the sender outruns the receiver and the figure measures its queue, not a message
if (!o.gaps.every(g => Number.isFinite(g) && g >= 1)) { console.error('--gaps takes milliseconds >= 1'); process.exit(2) }
if (!Number.isInteger(o.frames) || o.frames < 10) { console.error('--frames takes an integer >= 10'); process.exit(2) }
// a frame carries its send time in its first 8 bytes; the receiver reads frames of up to 1 MiB
if (!Number.isInteger(o.bytes) || o.bytes < 8 || o.bytes > 1 << 20) { console.error('--bytes takes an integer from 8 to 1048576'); process.exit(2) }

const now = () => performance.timeOrigin + performance.now()
const median = v => { const s = [...v].sort((a, b) => a - b); return s[s.length >> 1] }
const p90 = v => { const s = [...v].sort((a, b) => a - b); return s[Math.floor(s.length * 0.9)] }

// ---- receiver (a child process): reports the one-way latencies of the frames after the first 10% (warm-up) ----
if (role !== undefined) {
  const latencies = []
  const onFrame = sentAt => {
    latencies.push(now() - sentAt)
    if (latencies.length === o.frames) {
      const kept = latencies.slice(Math.floor(o.frames / 10))
      process.send({ median: median(kept), p90: p90(kept) })
      latencies.length = 0
    }
  }
  if (role === 'libp2p') {
    const host = await createSwarmHost({ listen: ['/ip4/127.0.0.1/tcp/0'] })
    await host.handle(PROTOCOL, stream => {
      const lp = lpStream(stream, { maxDataLength: 1 << 20 })
      void (async () => {
        for (;;) {
          const frame = (await lp.read()).subarray()
          onFrame(new DataView(frame.buffer, frame.byteOffset, 8).getFloat64(0, true))
        }
      })().catch(() => {})
    })
    process.send({ addr: host.getMultiaddrs()[0].toString() })
  } else {
    const server = net.createServer(socket => {
      socket.setNoDelay(true)
      let pending = Buffer.alloc(0)
      socket.on('data', data => {
        pending = Buffer.concat([pending, data])
        while (pending.length >= o.bytes) {
          onFrame(pending.readDoubleLE(0))
          pending = pending.subarray(o.bytes)
        }
      })
    }).listen(0, '127.0.0.1', () => { process.send({ port: server.address().port }) })
  }
} else {
  // ---- sender ----
  const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
  const start = transport => {
    const child = fork(fileURLToPath(import.meta.url), ['--receiver', transport, '--frames', String(o.frames), '--bytes', String(o.bytes)])
    const next = () => new Promise(resolve => child.once('message', resolve))
    return { child, next }
  }
  const rows = []
  // libp2p
  {
    const { child, next } = start('libp2p')
    const { addr } = await next()
    const host = await createSwarmHost({})
    const lp = lpStream(await host.dialProtocol(multiaddr(addr), PROTOCOL))
    const frame = new Uint8Array(o.bytes)
    for (const gap of o.gaps) {
      const report = next()
      for (let i = 0; i < o.frames; i++) {
        await sleep(gap)
        new DataView(frame.buffer).setFloat64(0, now(), true)
        await lp.write(frame)
      }
      rows.push({ transport: 'libp2p (tcp, noise, yamux, lp)', gap, ...await report })
    }
    await host.stop()
    child.kill()
  }
  // raw TCP
  {
    const { child, next } = start('tcp')
    const { port } = await next()
    const socket = net.connect(port, '127.0.0.1')
    socket.setNoDelay(true)
    await new Promise(resolve => socket.once('connect', resolve))
    const frame = Buffer.alloc(o.bytes)
    for (const gap of o.gaps) {
      const report = next()
      for (let i = 0; i < o.frames; i++) {
        await sleep(gap)
        frame.writeDoubleLE(now(), 0)
        socket.write(frame)
      }
      rows.push({ transport: 'raw TCP', gap, ...await report })
    }
    socket.destroy()
    child.kill()
  }
  console.log(`one-way latency of a ${o.bytes}-byte frame between two processes on loopback (${o.frames} frames per row)`)
  console.log('transport                         idle before each   median     p90')
  for (const r of rows) {
    console.log(`${r.transport.padEnd(34)}${`${r.gap} ms`.padEnd(19)}${r.median.toFixed(3).padStart(6)} ms ${r.p90.toFixed(3).padStart(6)} ms`)
  }
}
