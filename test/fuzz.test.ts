/**
 * Bad input against a live node: a real `swarm-node serve` process and a real libp2p peer in this process that
 * speaks the inference and info protocols with hostile frames (random bytes, mutated valid frames, wrong types,
 * wrong shapes and dtypes, NaN/Inf hidden states, frames over the limit, msgpack bombs, out-of-order and overlong
 * steps, a second open, a foreign session id). Every reply must be a well-formed typed error (or a legitimate answer
 * to input that happened to be valid) or the stream is closed; afterwards the node still generates exactly what a
 * local run generates, its cache budget is whole again and its RSS has not run away.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PRESETS } from '@swarm/kernels'
import { runGeneration, Swarm } from '@swarm/client'
import {
  createSwarmHost, encodeClientMessage, encodeInfoRequest, encodeTensor, ERROR_CODES, INFERENCE_PROTOCOL, INFO_PROTOCOL,
  MAX_FRAME_BYTES, newSessionId, packValue, parseInfoResponse, parseNodeMessage, type InfoResponse, type NodeMessage,
  type SwarmHost, type WireDtype
} from '@swarm/protocol'
import { ensureBuilt } from './harness/processes.js'
import { setup, type SwarmHarness } from './harness/swarm.js'
import { lpStream, memoryOf, multiaddr, peerIdFromString } from './harness/libp2p.js'
import { localGreedy, writeTinyModel } from './harness/local.js'

const PROMPT = 'Fuzzing never breaks the swarm'
const GEN_TOKENS = 24
/** frames sent to each handler by the random phase */
const FRAMES_PER_HANDLER = Number(process.env.FUZZ_FRAMES ?? 10_000)
/** in-session frames per inference stream, and streams run side by side */
const FRAMES_PER_STREAM = 250
const PARALLEL_STREAMS = 4
/** frames written before their replies are read (lpStream has no receive backpressure: keep it small) */
const WINDOW = 8
const INFO_PARALLEL = 16
const CACHE_TOKENS = 4096
/** V8 heap limits of the node process under test (FUZZ_NODE_OPTIONS='' for the defaults) */
const NODE_HEAP_OPTIONS = '--max-old-space-size=64 --max-semi-space-size=2'
const SEED = Number(process.env.FUZZ_SEED ?? 20261124)

const config = PRESETS.tiny
const DIM = config.dim
const L = config.nLayers

let dir: string
let modelPath: string
let modelId: string
let localTokens: number[]
let harness: SwarmHarness
let host: SwarmHost
let nodePid: number

type Lp = ReturnType<typeof lpStream>

/** mulberry32: reproducible randomness (FUZZ_SEED=... to replay a run) */
function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

class Rng {
  constructor (readonly next: () => number) {}
  int (n: number): number { return Math.floor(this.next() * n) }
  pick<T> (items: readonly T[]): T { return items[this.int(items.length)] }
  chance (p: number): boolean { return this.next() < p }
  bytes (n: number): Uint8Array { return Uint8Array.from({ length: n }, () => this.int(256)) }
}

/** what the fuzzer saw */
interface Stats {
  sent: number
  replies: number
  /** stream ended (closed, reset, EOF) with frames unanswered, or a read/write failed */
  closed: number
  codes: Map<string, number>
  types: Map<string, number>
  /** replies that were not valid protocol messages, or errors with a code outside ERROR_CODES */
  bad: string[]
  /** reads that got nothing within the deadline (the node hung on a frame) */
  hangs: number
  /** messages of 'internal' errors: each one is a failure the node did not classify (a bug to look at) */
  internal: string[]
}

function newStats (): Stats {
  return { sent: 0, replies: 0, closed: 0, codes: new Map(), types: new Map(), bad: [], hangs: 0, internal: [] }
}

function count (map: Map<string, number>, key: string): void { map.set(key, (map.get(key) ?? 0) + 1) }

function record (stats: Stats, reply: NodeMessage | InfoResponse): void {
  stats.replies++
  count(stats.types, reply.type)
  if (reply.type === 'error') {
    count(stats.codes, reply.code)
    if (!(ERROR_CODES as readonly string[]).includes(reply.code)) stats.bad.push(`unknown error code ${reply.code}: ${reply.message}`)
    if (reply.code === 'internal') stats.internal.push(reply.message.slice(0, 200))
  }
}

const READ_TIMEOUT_MS = 15_000

/** the next reply, or 'closed' when the stream ended; malformed replies and hangs are recorded */
async function readReply<T> (lp: Lp, parse: (bytes: Uint8Array) => T, stats: Stats): Promise<T | 'closed'> {
  const deadline = AbortSignal.timeout(READ_TIMEOUT_MS)
  let bytes: Uint8Array
  try {
    bytes = (await lp.read({ signal: deadline })).subarray()
  } catch {
    if (deadline.aborted) stats.hangs++
    return 'closed'
  }
  try {
    return parse(bytes)
  } catch (err) {
    stats.bad.push(`unparseable reply: ${(err as Error).message}`)
    return 'closed'
  }
}

// ---- frame generators ----------------------------------------------------------------------------------------

interface SessionState {
  sessionId: string
  maxLength: number
  /** cache length and next step id, assuming every valid step succeeds */
  length: number
  stepId: number
}

function hiddenValues (rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => (rng.next() - 0.5) * 2)
}

function validStep (rng: Rng, state: SessionState): Uint8Array {
  const T = 1 + rng.int(Math.min(3, Math.max(1, state.maxLength - state.length)))
  const dtype = rng.pick<WireDtype>(['f32', 'f16', 'bf16'])
  const frame = encodeClientMessage({
    type: 'step', stepId: state.stepId++, position: state.length, hidden: encodeTensor(hiddenValues(rng, T * DIM), [T, DIM], dtype)
  })
  if (state.length + T <= state.maxLength) state.length += T
  return frame
}

const WEIRD_VALUES: readonly unknown[] = [
  null, true, false, 0, -1, 1.5, -0.5, 2 ** 53, 2 ** 64, -(2 ** 31), Number.NaN, Infinity, -Infinity, '', 'x', 'step', 'open',
  'f64', 'q8', 'x'.repeat(5000), [], [1], [1, 2, 3], [[[[[[[[1]]]]]]]], {}, { a: 1 }, { dtype: 'f32' }, new Uint8Array(0),
  new Uint8Array(7), new Float32Array(4), new Float64Array(2), new Int32Array(3), [-1, DIM], [0, DIM], [1, DIM, 1]
]

/** a step message as a plain object, so fields can be corrupted before encoding */
function stepObject (rng: Rng, state: SessionState): Record<string, unknown> {
  const T = 1 + rng.int(2)
  return {
    type: 'step',
    stepId: state.stepId++,
    position: state.length,
    hidden: { dtype: 'f32', shape: [T, DIM], data: new Uint8Array(hiddenValues(rng, T * DIM).buffer) }
  }
}

/** one field (or the hidden tensor's) replaced by a value of the wrong type or out of bounds */
function wrongField (rng: Rng, state: SessionState): Uint8Array {
  const step = stepObject(rng, state)
  const hidden = step.hidden as Record<string, unknown>
  const target = rng.pick(['type', 'stepId', 'position', 'startFrom', 'hidden', 'dtype', 'shape', 'data', 'extra', 'drop'])
  const value = rng.pick(WEIRD_VALUES)
  if (target === 'dtype' || target === 'shape' || target === 'data') hidden[target] = value
  else if (target === 'extra') step[`x${rng.int(1000)}`] = value
  else if (target === 'drop') delete step[rng.pick(['type', 'stepId', 'position', 'hidden'])]
  else step[target] = value
  return packValue(step)
}

/** structurally valid msgpack, semantically wrong tensors */
function badTensor (rng: Rng, state: SessionState): Uint8Array {
  const step = stepObject(rng, state)
  const T = 1 + rng.int(3)
  const kind = rng.int(10)
  const f32 = (values: Float32Array): Uint8Array => new Uint8Array(values.buffer)
  switch (kind) {
    case 0: { // NaN / Inf in f32
      const values = hiddenValues(rng, T * DIM)
      values[rng.int(values.length)] = rng.pick([Number.NaN, Infinity, -Infinity])
      step.hidden = { dtype: 'f32', shape: [T, DIM], data: f32(values) }
      break
    }
    case 1: { // NaN / Inf in f16 (exponent all ones) or bf16
      const dtype = rng.pick(['f16', 'bf16'])
      const raw = new Uint16Array(T * DIM)
      raw[rng.int(raw.length)] = dtype === 'f16' ? rng.pick([0x7c00, 0xfc00, 0x7e00]) : rng.pick([0x7f80, 0xff80, 0x7fc0])
      step.hidden = { dtype, shape: [T, DIM], data: new Uint8Array(raw.buffer) }
      break
    }
    case 2: // bytes that disagree with the shape
      step.hidden = { dtype: 'f32', shape: [T, DIM], data: rng.bytes(T * DIM * 4 + rng.pick([-4, -1, 1, 4, 100])) }
      break
    case 3: { // the wrong hidden size
      const H = rng.pick([1, DIM - 1, DIM / 2, DIM * 2])
      step.hidden = { dtype: 'f32', shape: [T, H], data: new Uint8Array(T * H * 4) }
      break
    }
    case 4: // a batch of several sequences, or rank 1 / rank 4
      step.hidden = rng.pick([
        { dtype: 'f32', shape: [2, T, DIM], data: new Uint8Array(2 * T * DIM * 4) },
        { dtype: 'f32', shape: [T * DIM], data: new Uint8Array(T * DIM * 4) },
        { dtype: 'f32', shape: [1, 1, T, DIM], data: new Uint8Array(T * DIM * 4) }
      ])
      break
    case 5: // unknown dtypes
      step.hidden = { dtype: rng.pick(['f64', 'q8', 'int8', 'F32', '', 'bf16 ']), shape: [T, DIM], data: new Uint8Array(T * DIM * 4) }
      break
    case 6: // absurd shapes: huge, negative, fractional, too many dims, zero tokens
      step.hidden = {
        dtype: 'f32',
        shape: rng.pick([[2 ** 31, DIM], [-1, DIM], [1.5, DIM], [1, 1, 1, 1, 1, 1, 1, 1, 1, DIM], [0, DIM], [65536, 65536]]),
        data: new Uint8Array(0)
      }
      break
    case 7: // a step past maxLength (a valid tensor)
      step.hidden = { dtype: 'f32', shape: [state.maxLength + 1, DIM], data: new Uint8Array((state.maxLength + 1) * DIM * 4) }
      break
    case 8: // typed arrays where bytes belong
      step.hidden = { dtype: 'f32', shape: [T, DIM], data: hiddenValues(rng, T * DIM) }
      break
    default: // subnormals and extremes (finite: accepted), as f32
      step.hidden = { dtype: 'f32', shape: [1, DIM], data: f32(Float32Array.from({ length: DIM }, () => rng.pick([1e-45, -3.4e38, 3.4e38, 0, -0]))) }
  }
  return packValue(step)
}

/** steps at the wrong place in the session */
function badSequence (rng: Rng, state: SessionState): Uint8Array {
  const T = 1 + rng.int(2)
  const hidden = encodeTensor(hiddenValues(rng, T * DIM), [T, DIM], 'f32')
  const kind = rng.int(5)
  const stepId = kind === 0 ? Math.max(0, state.stepId - 1 - rng.int(3)) : state.stepId++
  const startFrom = kind === 3 ? state.length + 1 + rng.int(5) : kind === 4 ? state.length + 1000 : undefined
  const position = startFrom ?? (kind === 1 ? state.length + 1 + rng.int(5) : kind === 2 ? Math.max(0, state.length - 1 - rng.int(3)) : state.length)
  return encodeClientMessage({ type: 'step', stepId, position, hidden, ...(startFrom !== undefined ? { startFrom } : {}) })
}

/** msgpack the scanner must refuse before decoding: lying lengths, deep nesting, extension types */
function msgpackBomb (rng: Rng): Uint8Array {
  const kind = rng.int(8)
  switch (kind) {
    case 0: return Uint8Array.from([0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]) // array32 of 4 Gi items
    case 1: return Uint8Array.from([0xdf, 0x7f, 0xff, 0xff, 0xff]) // map32 of 2 Gi pairs
    case 2: return Uint8Array.from([0xdb, 0xff, 0xff, 0xff, 0xf0, 0x61]) // str32 of 4 GiB
    case 3: return Uint8Array.from([0xc6, 0x7f, 0xff, 0xff, 0xff, 0x00]) // bin32 of 2 GiB
    case 4: return Uint8Array.from([...new Array(200).fill(0x91), 0x01]) // 200 nested arrays
    case 5: return Uint8Array.from([0xd6, 0xff, 0, 0, 0, 0]) // timestamp extension
    case 6: return Uint8Array.from([0xc7, 0x05, 0x74, 0x20, 1, 2, 3, 4]) // typed-array extension, unknown code
    default: return Uint8Array.from([0x81, 0xa4, 0x74, 0x79, 0x70, 0x65, 0xc1]) // {type: <reserved byte>}
  }
}

/** bit flips, overwritten, inserted or deleted bytes, truncation or trailing garbage on a valid frame */
function mutate (rng: Rng, frame: Uint8Array): Uint8Array {
  let out = frame.slice()
  const edits = 1 + rng.int(4)
  for (let e = 0; e < edits; e++) {
    // mostly in the header (the first 64 bytes), where the structure is
    const at = rng.chance(0.7) ? rng.int(Math.min(64, out.length)) : rng.int(Math.max(1, out.length))
    switch (rng.int(6)) {
      case 0: out[at] ^= 1 << rng.int(8); break
      case 1: out[at] = rng.int(256); break
      case 2: out = Uint8Array.from([...out.subarray(0, at), ...rng.bytes(1 + rng.int(8)), ...out.subarray(at)]); break
      case 3: out = Uint8Array.from([...out.subarray(0, at), ...out.subarray(at + 1 + rng.int(8))]); break
      case 4: out = out.slice(0, at); break
      default: out = Uint8Array.from([...out, ...rng.bytes(1 + rng.int(16))])
    }
  }
  return out
}

function openMessage (sessionId: string, maxLength: number): Uint8Array {
  return encodeClientMessage({ type: 'open', sessionId, modelId, blocks: [0, L], maxLength })
}

/** a first frame that is not an acceptable open */
function badOpen (rng: Rng, liveSessionIds: string[]): Uint8Array {
  const sessionId = newSessionId()
  const base = { type: 'open', sessionId, modelId, blocks: [0, L], maxLength: 16 }
  switch (rng.int(9)) {
    case 0: return packValue({ ...base, modelId: 'some-other-model' })
    case 1: return packValue({ ...base, blocks: rng.pick([[0, L + 1], [L, L + 2], [3, 2], [-1, 2], [0, 5000]]) })
    case 2: return packValue({ ...base, maxLength: rng.pick([0, -1, config.contextLength + 1, 2 ** 40, 1.5]) })
    case 3: return packValue({ ...base, sessionId: rng.pick(['', 'ABC', 'z'.repeat(32), sessionId.toUpperCase(), 42]) })
    case 4: return packValue({ ...base, dtype: rng.pick(['f64', 'q4', 3, '']) })
    case 5: return rng.chance(0.5) ? encodeClientMessage({ type: 'close' }) : packValue({ type: 'step', stepId: 0, position: 0 })
    case 6: return liveSessionIds.length > 0 ? openMessage(rng.pick(liveSessionIds), 16) : rng.bytes(16) // a foreign session's id
    case 7: return mutate(rng, openMessage(sessionId, 16))
    default: return rng.bytes(rng.int(64))
  }
}

/** one in-session frame */
function sessionFrame (rng: Rng, state: SessionState, liveSessionIds: string[]): Uint8Array {
  const r = rng.next()
  if (r < 0.10) return validStep(rng, state)
  if (r < 0.18) return rng.bytes(rng.int(96))
  if (r < 0.43) return mutate(rng, rng.chance(0.8) ? validStep(rng, { ...state }) : openMessage(state.sessionId, state.maxLength))
  if (r < 0.63) return wrongField(rng, state)
  if (r < 0.80) return badTensor(rng, state)
  if (r < 0.92) return badSequence(rng, state)
  if (r < 0.95) return openMessage(rng.chance(0.5) && liveSessionIds.length > 0 ? rng.pick(liveSessionIds) : newSessionId(), 16)
  return msgpackBomb(rng)
}

// ---- drivers --------------------------------------------------------------------------------------------------

async function dialInference (): Promise<{ lp: Lp, stream: Awaited<ReturnType<SwarmHost['dialProtocol']>> }> {
  const stream = await host.dialProtocol(peerIdFromString(harness.nodes[0].ready.peerId), INFERENCE_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
  return { stream, lp: lpStream(stream, { maxDataLength: MAX_FRAME_BYTES, maxBufferSize: MAX_FRAME_BYTES + 16 }) }
}

/** one inference stream: an open (valid or not), then `frames` frames with at most WINDOW unanswered */
async function fuzzInferenceStream (rng: Rng, frames: number, stats: Stats, live: string[]): Promise<void> {
  const { stream, lp } = await dialInference()
  const state: SessionState = { sessionId: newSessionId(), maxLength: 8 + rng.int(56), length: 0, stepId: 0 }
  const goodOpen = rng.chance(0.9)
  const parse = (b: Uint8Array): NodeMessage => parseNodeMessage(b)
  try {
    await lp.write(goodOpen ? openMessage(state.sessionId, state.maxLength) : badOpen(rng, live))
    stats.sent++
    const first = await readReply(lp, parse, stats)
    if (first === 'closed') { stats.closed++; return }
    record(stats, first)
    if (first.type !== 'opened') {
      // a refused open ends the stream
      if (await readReply(lp, parse, stats) !== 'closed') stats.bad.push('stream still open after a refused open')
      return
    }
    live.push(state.sessionId)
    let inflight = 0
    let ended = false
    for (let i = 0; i < frames && !ended; i++) {
      const frame = sessionFrame(rng, state, live)
      try {
        await lp.write(frame, { signal: AbortSignal.timeout(10_000) })
      } catch {
        ended = true
        break
      }
      stats.sent++
      inflight++
      while (inflight >= WINDOW || (i === frames - 1 && inflight > 0)) {
        const reply = await readReply(lp, parse, stats)
        inflight--
        if (reply === 'closed') { ended = true; break }
        record(stats, reply)
      }
    }
    if (ended) stats.closed++
    else await lp.write(encodeClientMessage({ type: 'close' })).catch(() => {})
  } finally {
    const at = live.indexOf(state.sessionId)
    if (at >= 0) live.splice(at, 1)
    await stream.close({ signal: AbortSignal.timeout(2_000) }).catch(() => { stream.abort(new Error('fuzz stream done')) })
  }
}

function infoFrame (rng: Rng): Uint8Array {
  const r = rng.next()
  if (r < 0.08) return encodeInfoRequest({ type: 'info-request' })
  if (r < 0.16) return encodeInfoRequest({ type: 'ping', nonce: rng.int(2 ** 31), ...(rng.chance(0.3) ? { payload: rng.bytes(rng.int(4096)) } : {}) })
  if (r < 0.30) return rng.bytes(rng.int(96))
  if (r < 0.60) return mutate(rng, rng.chance(0.5) ? encodeInfoRequest({ type: 'info-request' }) : encodeInfoRequest({ type: 'ping', nonce: rng.int(1000), payload: rng.bytes(16) }))
  if (r < 0.90) {
    const request: Record<string, unknown> = rng.chance(0.5) ? { type: 'ping', nonce: rng.int(1000) } : { type: 'info-request' }
    request[rng.pick(['type', 'nonce', 'payload', 'extra'])] = rng.pick(WEIRD_VALUES)
    return packValue(request)
  }
  return msgpackBomb(rng)
}

/** one info stream: a request frame, sometimes followed by garbage (the handler answers one request per stream) */
async function fuzzInfoStream (rng: Rng, stats: Stats): Promise<void> {
  const stream = await host.dialProtocol(peerIdFromString(harness.nodes[0].ready.peerId), INFO_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
  const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES })
  try {
    await lp.write(infoFrame(rng))
    stats.sent++
    if (rng.chance(0.1)) await lp.write(rng.bytes(rng.int(64))).catch(() => {})
    const reply = await readReply(lp, b => parseInfoResponse(b), stats)
    if (reply === 'closed') stats.closed++
    else record(stats, reply)
  } finally {
    await stream.close({ signal: AbortSignal.timeout(2_000) }).catch(() => { stream.abort(new Error('fuzz stream done')) })
  }
}

async function nodeInfo (): Promise<Extract<InfoResponse, { type: 'info' }>> {
  const stream = await host.dialProtocol(peerIdFromString(harness.nodes[0].ready.peerId), INFO_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
  const lp = lpStream(stream)
  await lp.write(encodeInfoRequest({ type: 'info-request' }))
  const reply = parseInfoResponse((await lp.read({ signal: AbortSignal.timeout(10_000) })).subarray())
  await stream.close().catch(() => {})
  if (reply.type !== 'info') throw new Error(`expected info, got ${reply.type}`)
  return reply
}

async function generateThroughSwarm (): Promise<number[]> {
  const client = await Swarm.connect({ bootstrap: [harness.bootstrap] })
  try {
    const model = await client.model(modelPath)
    const result = await runGeneration(model.runner(await model.inferenceSession({ maxLength: 64 })), model.tokenizer, PROMPT, { maxTokens: GEN_TOKENS })
    return result.tokens
  } finally {
    await client.close()
  }
}

function summary (name: string, stats: Stats): string {
  const sorted = (m: Map<string, number>): string => [...m].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')
  return `${name}: ${stats.sent} frames sent, ${stats.replies} replies (${sorted(stats.types)}), ${stats.closed} streams ended early; error codes: ${sorted(stats.codes)}`
}

beforeAll(async () => {
  await ensureBuilt()
  dir = await mkdtemp(join(tmpdir(), 'swarm-fuzz-'))
  modelPath = await writeTinyModel(dir, 5)
  localTokens = await localGreedy(modelPath, PROMPT, GEN_TOKENS, 64)
  // The node runs with a small V8 heap: a leak then ends in an out-of-memory crash instead of hiding in a heap that
  // V8 lets grow lazily (with default settings RSS climbs ~+100 MB over these frames and then levels off)
  const nodeOptions = process.env.NODE_OPTIONS
  process.env.NODE_OPTIONS = process.env.FUZZ_NODE_OPTIONS ?? NODE_HEAP_OPTIONS
  harness = await setup({ model: modelPath, nodes: [{ blocks: [0, L], args: ['--cache-tokens', String(CACHE_TOKENS), '--session-timeout', '30'] }] })
  if (nodeOptions === undefined) delete process.env.NODE_OPTIONS
  else process.env.NODE_OPTIONS = nodeOptions
  modelId = harness.nodes[0].ready.modelId!
  nodePid = harness.nodes[0].child.pid!
  host = await createSwarmHost({ dhtClient: true })
  await host.dial(multiaddr(harness.nodes[0].ready.addrs[0]), { signal: AbortSignal.timeout(10_000) })
})

afterAll(async () => {
  await host?.stop()
  await harness?.cleanup()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

describe('fuzzing a live node', () => {
  let rssBeforeMb = 0
  /** node RSS after each phase, MB */
  const rss: Array<[string, number]> = []
  const sample = async (phase: string): Promise<void> => { rss.push([phase, (await memoryOf(nodePid)).rssMb]) }

  it('serves a normal generation before the fuzzing (baseline RSS)', async () => {
    expect(await generateThroughSwarm()).toEqual(localTokens)
    rssBeforeMb = (await memoryOf(nodePid)).rssMb
    rss.push(['baseline', rssBeforeMb])
  })

  it('answers each kind of bad inference frame with its typed error and keeps the session usable', async () => {
    const { stream, lp } = await dialInference()
    const stats = newStats()
    const sessionId = newSessionId()
    const ask = async (frame: Uint8Array): Promise<NodeMessage | 'closed'> => {
      await lp.write(frame)
      const reply = await readReply(lp, b => parseNodeMessage(b), stats)
      if (reply !== 'closed') record(stats, reply)
      return reply
    }
    const code = async (frame: Uint8Array): Promise<string> => {
      const reply = await ask(frame)
      return reply === 'closed' ? 'closed' : reply.type === 'error' ? reply.code : reply.type
    }
    const tensor = (T: number, dtype: WireDtype = 'f32'): ReturnType<typeof encodeTensor> =>
      encodeTensor(Float32Array.from({ length: T * DIM }, (_, i) => Math.sin(i) * 0.1), [T, DIM], dtype)
    let nextStepId = 0
    /** a step (by default a valid one at position 0); every call takes a fresh stepId unless it names one */
    const step = (o: Record<string, unknown>): Uint8Array => packValue({ type: 'step', stepId: nextStepId++, position: 0, hidden: tensor(1), ...o })
    const nan = new Uint8Array(new Float32Array(DIM).fill(Number.NaN).buffer)

    expect(await code(openMessage(sessionId, 16))).toBe('opened')
    const cases: Array<[string, () => Uint8Array, string]> = [
      ['reserved msgpack byte', () => Uint8Array.from([0xc1]), 'malformed-message'],
      ['empty frame', () => new Uint8Array(0), 'malformed-message'],
      ['trailing bytes', () => Uint8Array.from([...encodeClientMessage({ type: 'close' }), 0x00]), 'malformed-message'],
      ['unknown type', () => packValue({ type: 'nope' }), 'malformed-message'],
      ['step without fields', () => packValue({ type: 'step' }), 'malformed-message'],
      ['stepId as a string', () => step({ stepId: '0' }), 'malformed-message'],
      ['negative position', () => step({ position: -1 }), 'malformed-message'],
      ['startFrom unlike position', () => step({ position: 0, startFrom: 1 }), 'malformed-message'],
      ['array32 of 4 Gi items', () => Uint8Array.from([0xdd, 0xff, 0xff, 0xff, 0xff]), 'malformed-message'],
      ['str32 of 4 GiB', () => Uint8Array.from([0xdb, 0xff, 0xff, 0xff, 0xf0, 0x61]), 'malformed-message'],
      ['200 nested arrays', () => Uint8Array.from([...new Array(200).fill(0x91), 0x01]), 'malformed-message'],
      ['timestamp extension', () => Uint8Array.from([0xd6, 0xff, 0, 0, 0, 0]), 'malformed-message'],
      ['dtype f64', () => step({ hidden: { dtype: 'f64', shape: [1, DIM], data: new Uint8Array(DIM * 8) } }), 'invalid-tensor'],
      ['bytes disagree with the shape', () => step({ hidden: { dtype: 'f32', shape: [1, DIM], data: new Uint8Array(100) } }), 'invalid-tensor'],
      ['Float32Array instead of bytes', () => step({ hidden: { dtype: 'f32', shape: [1, DIM], data: new Float32Array(DIM) } }), 'invalid-tensor'],
      ['zero tokens', () => step({ hidden: { dtype: 'f32', shape: [0, DIM], data: new Uint8Array(0) } }), 'invalid-tensor'],
      ['rank 9', () => step({ hidden: { dtype: 'f32', shape: [1, 1, 1, 1, 1, 1, 1, 1, DIM], data: new Uint8Array(DIM * 4) } }), 'invalid-tensor'],
      ['2^31 x 2^31 elements', () => step({ hidden: { dtype: 'f32', shape: [2 ** 31, 2 ** 31], data: new Uint8Array(0) } }), 'invalid-tensor'],
      ['hidden size 32', () => step({ hidden: { dtype: 'f32', shape: [1, 32], data: new Uint8Array(32 * 4) } }), 'invalid-tensor'],
      ['batch of two', () => step({ hidden: { dtype: 'f32', shape: [2, 1, DIM], data: new Uint8Array(2 * DIM * 4) } }), 'invalid-tensor'],
      ['NaN (f32)', () => step({ hidden: { dtype: 'f32', shape: [1, DIM], data: nan } }), 'invalid-tensor'],
      ['+Inf (f16)', () => step({ hidden: { dtype: 'f16', shape: [1, DIM], data: new Uint8Array(new Uint16Array(DIM).fill(0x7c00).buffer) } }), 'invalid-tensor'],
      ['NaN (bf16)', () => step({ hidden: { dtype: 'bf16', shape: [1, DIM], data: new Uint8Array(new Uint16Array(DIM).fill(0x7fc0).buffer) } }), 'invalid-tensor'],
      ['position ahead of the cache', () => step({ position: 3 }), 'out-of-order'],
      ['startFrom ahead of the cache', () => step({ position: 5, startFrom: 5 }), 'out-of-order'],
      ['past maxLength', () => step({ hidden: tensor(17) }), 'too-long'],
      ['a second open', () => openMessage(newSessionId(), 16), 'malformed-message'],
      ['a valid step', () => step({ hidden: tensor(2) }), 'result'],
      ['a replayed stepId', () => step({ stepId: nextStepId - 1, position: 2 }), 'out-of-order'],
      ['a step behind the cache', () => step({ position: 1 }), 'out-of-order'],
      ['a valid step after all that', () => step({ position: 2, hidden: tensor(3, 'f16') }), 'result'],
      ['a rewind (startFrom) to 0', () => step({ position: 0, startFrom: 0, hidden: tensor(1) }), 'result']
    ]
    const got: Array<[string, string]> = []
    for (const [name, frame] of cases) got.push([name, await code(frame())])
    expect(got).toEqual(cases.map(([name, , expected]) => [name, expected]))

    // a foreign session id: another stream cannot open (or hijack) this session
    const other = await dialInference()
    await other.lp.write(openMessage(sessionId, 16))
    const foreign = await readReply(other.lp, b => parseNodeMessage(b), stats)
    expect(foreign !== 'closed' && foreign.type === 'error' ? foreign.code : foreign).toBe('session-exists')
    other.stream.abort(new Error('done'))
    expect(await code(step({ position: 1, hidden: tensor(1) }))).toBe('result')

    // a stream that does not start with an open (a step for a session this stream never opened, a close, garbage)
    const firstFrame = async (frame: Uint8Array): Promise<string[]> => {
      const s = await dialInference()
      await s.lp.write(frame)
      const replies = [await readReply(s.lp, b => parseNodeMessage(b), stats), await readReply(s.lp, b => parseNodeMessage(b), stats)]
      return replies.map(r => r === 'closed' ? r : r.type === 'error' ? r.code : r.type)
    }
    expect(await firstFrame(step({ position: 0 }))).toEqual(['malformed-message', 'closed'])
    expect(await firstFrame(encodeClientMessage({ type: 'close' }))).toEqual(['malformed-message', 'closed'])
    expect(await firstFrame(Uint8Array.from([0xc1, 0xc1]))).toEqual(['malformed-message', 'closed'])
    expect(await firstFrame(packValue({ type: 'open', sessionId: newSessionId(), modelId: 'not-this-model', blocks: [0, L], maxLength: 16 }))).toEqual(['wrong-model', 'closed'])
    expect(await firstFrame(openMessage(newSessionId(), config.contextLength + 1))).toEqual(['too-long', 'closed'])

    // frames over the limit: the length prefix alone says so; the node answers frame-too-large and ends the stream
    const overLimit = async (prefix: number[], opened: boolean): Promise<Array<string>> => {
      const s = opened ? { stream, lp } : await dialInference()
      s.stream.send(Uint8Array.from([...prefix, 1, 2, 3]))
      const first = await readReply(s.lp, b => parseNodeMessage(b), stats)
      const second = await readReply(s.lp, b => parseNodeMessage(b), stats)
      return [first, second].map(r => r === 'closed' ? r : r.type === 'error' ? r.code : r.type)
    }
    const overMax = [0x81, 0x80, 0x80, 0x20] // varint(MAX_FRAME_BYTES + 1)
    expect(await overLimit(overMax, true)).toEqual(['frame-too-large', 'closed'])
    // ... before any open (where the node accepts only small frames)
    expect(await overLimit([0x80, 0x80, 0x40], false)).toEqual(['frame-too-large', 'closed']) // varint(1 MiB)
    // a whole 5 MB frame inside a small session: refused with a typed error, or the stream is reset outright
    const big = await dialInference()
    await big.lp.write(openMessage(newSessionId(), 16))
    expect(await readReply(big.lp, b => parseNodeMessage(b), stats)).toMatchObject({ type: 'opened' })
    await big.lp.write(step({ position: 0, hidden: { dtype: 'f32', shape: [1, DIM], data: new Uint8Array(5e6) } })).catch(() => {})
    const bigReply = await readReply(big.lp, b => parseNodeMessage(b), stats)
    expect(bigReply === 'closed' || (bigReply.type === 'error' && bigReply.code === 'frame-too-large')).toBe(true)
    await sample('catalog')
    expect(stats.bad).toEqual([])
    expect(stats.hangs).toBe(0)
  })

  it(`survives ${FRAMES_PER_HANDLER} random and mutated inference frames`, async () => {
    const rng = new Rng(prng(SEED))
    const stats = newStats()
    const live: string[] = []
    const started = performance.now()
    const lanes = Array.from({ length: PARALLEL_STREAMS }, (_, lane) => (async () => {
      const laneRng = new Rng(prng(SEED + 1 + lane + rng.int(1000)))
      while (stats.sent < FRAMES_PER_HANDLER) await fuzzInferenceStream(laneRng, FRAMES_PER_STREAM, stats, live)
    })())
    await Promise.all(lanes)
    const seconds = (performance.now() - started) / 1000
    await sample('inference fuzz')
    console.log(`${summary('inference', stats)} (${seconds.toFixed(1)} s, seed ${SEED})`)
    expect(stats.sent).toBeGreaterThanOrEqual(FRAMES_PER_HANDLER)
    expect(stats.bad).toEqual([])
    expect(stats.hangs).toBe(0)
    expect(stats.internal).toEqual([])
    // nearly every frame was answered: streams end early only when a mutation made a close (or the node refused an open)
    expect(stats.replies).toBeGreaterThan(0.9 * stats.sent)
    expect(harness.nodes[0].child.exitCode).toBeNull()
  })

  it(`survives ${FRAMES_PER_HANDLER} random and mutated info requests`, async () => {
    const rng = new Rng(prng(SEED ^ 0x5eed))
    const stats = newStats()
    const started = performance.now()
    let next = 0
    await Promise.all(Array.from({ length: INFO_PARALLEL }, async () => {
      while (next++ < FRAMES_PER_HANDLER) await fuzzInfoStream(rng, stats)
    }))
    // over the limit: a length prefix past the info handler's frame limit (1 MiB + 1 KiB)
    const stream = await host.dialProtocol(peerIdFromString(harness.nodes[0].ready.peerId), INFO_PROTOCOL)
    stream.send(Uint8Array.from([0x80, 0x80, 0x80, 0x01, 1, 2, 3])) // varint(2 MiB), then a few bytes
    const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES })
    const tooLarge = await readReply(lp, b => parseInfoResponse(b), stats)
    stats.sent++
    expect(tooLarge !== 'closed' && tooLarge.type === 'error' ? tooLarge.code : tooLarge).toBe('frame-too-large')
    const seconds = (performance.now() - started) / 1000
    await sample('info fuzz')
    console.log(`${summary('info', stats)} (${seconds.toFixed(1)} s, seed ${SEED})`)
    expect(stats.sent).toBeGreaterThanOrEqual(FRAMES_PER_HANDLER)
    expect(stats.bad).toEqual([])
    expect(stats.hangs).toBe(0)
    expect(stats.types.get('info')).toBeGreaterThan(0)
    expect(stats.types.get('pong')).toBeGreaterThan(0)
    expect(harness.nodes[0].child.exitCode).toBeNull()
  })

  it('still generates exactly the local output; the cache budget is whole again; RSS did not run away', async () => {
    expect(await generateThroughSwarm()).toEqual(localTokens)
    // every fuzz session was closed or ended: nothing stays reserved
    let info = await nodeInfo()
    for (let i = 0; i < 50 && info.cacheTokensLeft !== CACHE_TOKENS; i++) {
      await new Promise(resolve => setTimeout(resolve, 100))
      info = await nodeInfo()
    }
    expect(info.cacheTokensLeft).toBe(CACHE_TOKENS)
    const after = await memoryOf(nodePid)
    console.log(`node RSS by phase: ${rss.map(([phase, mb]) => `${phase} ${mb.toFixed(1)} MB`).join(', ')}`)
    console.log(`node RSS: ${rssBeforeMb.toFixed(1)} MB before fuzzing, ${after.rssMb.toFixed(1)} MB after (${(after.rssMb - rssBeforeMb >= 0 ? '+' : '')}${(after.rssMb - rssBeforeMb).toFixed(1)} MB), peak ${after.peakMb.toFixed(1)} MB`)
    expect(after.rssMb - rssBeforeMb).toBeLessThan(100)
    expect(harness.nodes[0].stderr()).not.toMatch(/uncaught|unhandled|FATAL|heap out of memory/i)
  })
})
