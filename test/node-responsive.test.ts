/**
 * A node computes on its networking thread (packages/node/src/compute.ts), in pieces, handing the event loop back
 * between them: while a long prefill runs it must go on answering other peers. A real `swarm-node serve` process
 * gets one prefill step that takes hundreds of milliseconds (512 tokens through four blocks of dim 1024, one thread);
 * a second peer sends info pings one after another (a stream each) until the step's result comes. A node that held its thread for
 * the whole step would answer none of them before the result.
 *
 * A step of seconds (the CPU reference) must not end the session for its timeout, which bounds the wait for the
 * client's next frame only; and a client waiting on it pings it (liveness.ts): answered while it computes, not once it
 * is frozen.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PRESETS, randomWeights, syntheticVocab, writeGgufModel } from '@swarm/kernels'
import {
  createSwarmHost, decodeTensor, encodeClientMessage, encodeInfoRequest, encodeTensor, INFERENCE_PROTOCOL, INFO_PROTOCOL,
  newSessionId, parseInfoResponse, parseNodeMessage, type SwarmHost
} from '@swarm/protocol'
import { PeerUnresponsiveError } from '@swarm/client'
import { PeerProbe, Watchdog } from '../packages/client/src/liveness.js'
import { ensureBuilt } from './harness/processes.js'
import { setup, type SwarmHarness } from './harness/swarm.js'
import { lpStream, multiaddr, peerIdFromString } from './harness/libp2p.js'

const config = PRESETS.mid
const T = 512

let dir: string
let harness: SwarmHarness
let client: SwarmHost
let pinger: SwarmHost

beforeAll(async () => {
  await ensureBuilt()
  dir = await mkdtemp(join(tmpdir(), 'swarm-responsive-'))
  const model = join(dir, 'mid.gguf')
  await writeGgufModel(model, config, randomWeights(config, 5), { dtype: 'q8_0', vocab: syntheticVocab() })
  harness = await setup({ model, nodes: [{ blocks: [0, config.nLayers] }] })
  client = await createSwarmHost({ dhtClient: true })
  pinger = await createSwarmHost({ dhtClient: true })
  for (const host of [client, pinger]) await host.dial(multiaddr(harness.nodes[0].ready.addrs[0]), { signal: AbortSignal.timeout(10_000) })
}, 120_000)

afterAll(async () => {
  await client?.stop()
  await pinger?.stop()
  await harness?.cleanup()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

describe('a node computing a long step', () => {
  it('answers info pings from another peer before the step is done', async () => {
    const node = peerIdFromString(harness.nodes[0].ready.peerId)
    const info = parseInfoResponse
    const stream = await client.dialProtocol(node, INFERENCE_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
    const lp = lpStream(stream, { maxDataLength: 64 << 20 })
    const sessionId = newSessionId()
    const modelId = await (async () => {
      const s = await pinger.dialProtocol(node, INFO_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
      const l = lpStream(s)
      await l.write(encodeInfoRequest({ type: 'info-request' }))
      const reply = info((await l.read({ signal: AbortSignal.timeout(10_000) })).subarray())
      await s.close()
      if (reply.type !== 'info') throw new Error(`unexpected ${reply.type}`)
      return reply.modelId
    })()
    await lp.write(encodeClientMessage({ type: 'open', sessionId, modelId, blocks: [0, config.nLayers], maxLength: T + 8 }))
    expect(parseNodeMessage((await lp.read({ signal: AbortSignal.timeout(10_000) })).subarray()).type).toBe('opened')

    const hidden = Float32Array.from({ length: T * config.dim }, (_, i) => Math.sin(i * 0.37) * 0.5)
    await lp.write(encodeClientMessage({ type: 'step', stepId: 0, position: 0, hidden: encodeTensor(hidden, [T, config.dim], 'f32') }))
    let done = false
    const result = (async () => {
      const reply = parseNodeMessage((await lp.read({ signal: AbortSignal.timeout(120_000) })).subarray())
      done = true
      return reply
    })()

    // pings one after another (one stream each, as clients measure RTTs), until the result is in
    let answeredBefore = 0
    for (let nonce = 1; !done; nonce++) {
      const s = await pinger.dialProtocol(node, INFO_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
      const l = lpStream(s)
      await l.write(encodeInfoRequest({ type: 'ping', nonce }))
      const pong = info((await l.read({ signal: AbortSignal.timeout(10_000) })).subarray())
      expect(pong).toMatchObject({ type: 'pong', nonce })
      if (!done) answeredBefore++
      await s.close().catch(() => {})
    }

    const reply = await result
    expect(reply.type).toBe('result')
    if (reply.type !== 'result') return
    const out = decodeTensor(reply.hidden)
    expect(out.shape).toEqual([T, config.dim])
    expect(out.data.every(Number.isFinite)).toBe(true)
    // a node that held its thread for the whole step answers only the pings that come while the step uploads (2 here)
    expect(answeredBefore).toBeGreaterThanOrEqual(6)
    await lp.write(encodeClientMessage({ type: 'close' }))
    await stream.close()
  }, 180_000)
})

describe('a step of seconds (the CPU reference, --session-timeout 1)', () => {
  // the same model on the CPU reference (about 100x slower than the WebAssembly kernels) with --session-timeout 1: a
  // 32-token step takes seconds. The timeout bounds the wait for the client's next frame, not the node's own compute.
  let slow: SwarmHarness
  beforeAll(async () => {
    slow = await setup({ model: join(dir, 'mid.gguf'), nodes: [{ blocks: [0, config.nLayers], args: ['--backend', 'cpu', '--threads', '1', '--session-timeout', '1'] }] })
  }, 120_000)
  afterAll(async () => { await slow?.cleanup() })

  it('keeps the session: the next step after it is answered', async () => {
    const host = await createSwarmHost({ dhtClient: true })
    try {
      const ready = slow.nodes[0].ready
      await host.dial(multiaddr(ready.addrs[0]), { signal: AbortSignal.timeout(10_000) })
      const stream = await host.dialProtocol(peerIdFromString(ready.peerId), INFERENCE_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
      const lp = lpStream(stream, { maxDataLength: 64 << 20 })
      const steps = [32, 1]
      await lp.write(encodeClientMessage({ type: 'open', sessionId: newSessionId(), modelId: ready.modelId!, blocks: [0, config.nLayers], maxLength: 64 }))
      expect(parseNodeMessage((await lp.read({ signal: AbortSignal.timeout(10_000) })).subarray()).type).toBe('opened')
      let position = 0
      for (const [stepId, n] of steps.entries()) {
        const hidden = Float32Array.from({ length: n * config.dim }, (_, i) => Math.sin((i + position) * 0.37) * 0.5)
        const started = performance.now()
        await lp.write(encodeClientMessage({ type: 'step', stepId, position, hidden: encodeTensor(hidden, [n, config.dim], 'f32') }))
        const reply = parseNodeMessage((await lp.read({ signal: AbortSignal.timeout(120_000) })).subarray())
        console.log(`step ${stepId} (${n} tokens, session timeout 1 s): ${reply.type} after ${(performance.now() - started).toFixed(0)} ms`)
        expect(reply).toMatchObject({ type: 'result', stepId })
        position += n
      }
      await lp.write(encodeClientMessage({ type: 'close' }))
      await stream.close()
    } finally {
      await host.stop()
    }
  }, 180_000)

  // the client's watchdog (packages/client/src/liveness.ts) on a wait of seconds: pings while the node computes,
  // and a ping that is not answered once the node is frozen
  it('a client waiting on it pings it while it computes, and finds it hung once it is frozen (SIGSTOP)', async () => {
    const host = await createSwarmHost({ dhtClient: true })
    const node = slow.nodes[0]
    try {
      const ready = node.ready
      await host.dial(multiaddr(ready.addrs[0]), { signal: AbortSignal.timeout(10_000) })
      const stream = await host.dialProtocol(peerIdFromString(ready.peerId), INFERENCE_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
      const lp = lpStream(stream, { maxDataLength: 64 << 20 })
      await lp.write(encodeClientMessage({ type: 'open', sessionId: newSessionId(), modelId: ready.modelId!, blocks: [0, config.nLayers], maxLength: 64 }))
      expect(parseNodeMessage((await lp.read({ signal: AbortSignal.timeout(10_000) })).subarray()).type).toBe('opened')

      const probe = new PeerProbe(host, 1000)
      const hung: Error[] = []
      const watchdog = new Watchdog(probe, ready.peerId, 100, err => { hung.push(err) })
      // alive: a 32-token step of seconds on the CPU reference; the watchdog pings every 100 ms of it, all answered
      const hidden = Float32Array.from({ length: 32 * config.dim }, (_, i) => Math.sin(i * 0.37) * 0.5)
      const started = performance.now()
      watchdog.arm()
      await lp.write(encodeClientMessage({ type: 'step', stepId: 0, position: 0, hidden: encodeTensor(hidden, [32, config.dim], 'f32') }))
      const reply = parseNodeMessage((await lp.read({ signal: AbortSignal.timeout(120_000) })).subarray())
      watchdog.disarm()
      const waitedMs = performance.now() - started
      expect(reply).toMatchObject({ type: 'result', stepId: 0 })
      expect(hung).toEqual([])
      console.log(`a ${waitedMs.toFixed(0)} ms step: ${probe.pings} pings, all answered`)
      // one ping per 100 ms of quiet plus its round trip: at least a few in a wait of over a second
      expect(waitedMs).toBeGreaterThan(1000)
      expect(probe.pings).toBeGreaterThanOrEqual(3)

      // frozen: the next wait on it ends with PeerUnresponsiveError after a quiet 100 ms and a ping of 1000 ms
      node.kill('SIGSTOP')
      try {
        const found = new Promise<Error>(resolve => {
          const frozen = new Watchdog(probe, ready.peerId, 100, resolve)
          frozen.arm()
        })
        const err = await found
        expect(err).toBeInstanceOf(PeerUnresponsiveError)
        expect(err.message).toMatch(/no answer to a ping within 1000 ms/)
        // a disarmed watchdog says nothing, however long the server stays frozen
        watchdog.arm()
        watchdog.disarm()
        await new Promise(resolve => setTimeout(resolve, 1500))
        expect(hung).toEqual([])
      } finally {
        node.kill('SIGCONT')
      }
      stream.abort(new Error('test over'))
    } finally {
      await host.stop()
    }
  }, 180_000)
})
