/**
 * Server-to-server push (PUSH_PROTOCOL) against a live node, driven by a real libp2p peer in this process that plays
 * both the client and the previous span's server. A node must run a pushed step only when it comes from the peer the
 * client named as `prev` and fits the cache exactly; it answers it on the client's stream as the next step id and
 * drops the client's copy of it; a client step sent without its input (pushedTokens) runs the push it names, whether
 * that came before, comes after or was held, and gets push-missing when none comes; everything else pushed is
 * ignored, and a malformed push frame costs the sender its push stream, never the node. Results are compared with a
 * control session that gets the same inputs from the client alone.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PRESETS } from '@swarm/kernels'
import { Swarm } from '@swarm/client'
import {
  createSwarmHost, decodeTensor, encodeClientMessage, encodePushMessage, encodeTensor, INFERENCE_PROTOCOL,
  newSessionId, packValue, parseNodeMessage, PUSH_PROTOCOL, PUSH_WAIT_MS, type NodeMessage, type SwarmHost
} from '@swarm/protocol'
import { ensureBuilt } from './harness/processes.js'
import { setup, type SwarmHarness } from './harness/swarm.js'
import { generateKeyPair, lpStream, multiaddr, peerIdFromPrivateKey, peerIdFromString } from './harness/libp2p.js'
import { localGreedy, writeTinyModel } from './harness/local.js'

const config = PRESETS.tiny
const DIM = config.dim
const L = config.nLayers
const PROMPT = 'Pushed along the chain'
const GEN_TOKENS = 24

type Lp = ReturnType<typeof lpStream>

let dir: string
let modelPath: string
let harness: SwarmHarness
let host: SwarmHost
let me: string
let nodePeer: string

beforeAll(async () => {
  await ensureBuilt()
  dir = await mkdtemp(join(tmpdir(), 'swarm-push-'))
  modelPath = await writeTinyModel(dir, 11)
  harness = await setup({ model: modelPath, nodes: [{ blocks: [0, 2] }, { blocks: [2, L] }] })
  host = await createSwarmHost({ dhtClient: true })
  me = host.peerId.toString()
  // the node under test in the first test: the second one, blocks [2, L)
  nodePeer = harness.nodes[1].ready.peerId
  await host.dial(multiaddr(harness.nodes[1].ready.addrs[0]), { signal: AbortSignal.timeout(10_000) })
})

afterAll(async () => {
  await host?.stop()
  await harness?.cleanup()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

function hidden (seed: number): Float32Array {
  return Float32Array.from({ length: DIM }, (_, i) => Math.sin(seed * 131 + i * 0.37) * 0.5)
}

/** a client session over the blocks [2, L) of the node under test */
async function openSession (): Promise<{ lp: Lp, sessionId: string, next: () => Promise<NodeMessage>, opened: NodeMessage }> {
  const stream = await host.dialProtocol(peerIdFromString(nodePeer), INFERENCE_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
  const lp = lpStream(stream)
  const sessionId = newSessionId()
  await lp.write(encodeClientMessage({ type: 'open', sessionId, modelId: harness.nodes[1].ready.modelId!, blocks: [2, L], maxLength: 16 }))
  const next = async (): Promise<NodeMessage> => parseNodeMessage((await lp.read({ signal: AbortSignal.timeout(10_000) })).subarray())
  const opened = await next()
  expect(opened).toMatchObject({ type: 'opened', sessionId })
  return { lp, sessionId, next, opened }
}

function step (stepId: number, position: number, x: Float32Array, prev?: string): Uint8Array {
  return encodeClientMessage({ type: 'step', stepId, position, hidden: encodeTensor(x, [1, DIM]), ...(prev !== undefined ? { prev } : {}) })
}

/** a step whose input is the push from `prev` (StepMessage.pushedTokens) */
function stepWithoutInput (stepId: number, position: number, prev: string): Uint8Array {
  return encodeClientMessage({ type: 'step', stepId, position, pushedTokens: 1, prev })
}

function resultOf (message: NodeMessage, stepId: number): Float32Array {
  if (message.type !== 'result') throw new Error(`expected a result, got ${JSON.stringify(message).slice(0, 200)}`)
  expect(message.stepId).toBe(stepId)
  return decodeTensor(message.hidden).data
}

/** the results of a control session that gets every input from the client */
async function controlResults (inputs: Float32Array[]): Promise<Float32Array[]> {
  const control = await openSession()
  const expected: Float32Array[] = []
  for (const [k, x] of inputs.entries()) {
    await control.lp.write(step(k, k, x))
    expected.push(resultOf(await control.next(), k))
  }
  await control.lp.write(encodeClientMessage({ type: 'close' }))
  return expected
}

/** a session on the node under test, and a push stream to it from us */
async function pushedSession (): Promise<{ push: Lp, session: Awaited<ReturnType<typeof openSession>>, pushAt: (position: number, x: Float32Array) => Promise<void> }> {
  const push = lpStream(await host.dialProtocol(peerIdFromString(nodePeer), PUSH_PROTOCOL, { signal: AbortSignal.timeout(10_000) }))
  const session = await openSession()
  const pushAt = async (position: number, x: Float32Array): Promise<void> => {
    await push.write(encodePushMessage({ type: 'push', sessionId: session.sessionId, position, hidden: encodeTensor(x, [1, DIM]) }))
  }
  return { push, session, pushAt }
}

/** whether a frame arrives on `lp` within `ms` */
async function arrivesWithin (lp: Lp, ms: number): Promise<boolean> {
  try {
    await lp.read({ signal: AbortSignal.timeout(ms) })
    return true
  } catch {
    return false
  }
}

describe('server-to-server push on a live node', () => {
  it('runs pushes only from the named prev peer and at the cache length, and drops the client copy of a pushed step', async () => {
    const inputs = [1, 2, 3, 4, 5].map(hidden)
    const pushedInput = hidden(99)
    const expected = await controlResults(inputs)
    const { push, session, pushAt } = await pushedSession()

    // step 0 names another peer as prev: a push from us for position 1 must be ignored
    const stranger = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    await session.lp.write(step(0, 0, inputs[0], stranger))
    expect(resultOf(await session.next(), 0)).toEqual(expected[0])
    await pushAt(1, pushedInput)
    expect(await arrivesWithin(session.lp, 500)).toBe(false)

    // step 1 from the client runs its own input (the push was not applied) and names us as prev
    await session.lp.write(step(1, 1, inputs[1], me))
    expect(resultOf(await session.next(), 1)).toEqual(expected[1])

    // a push at the wrong position is ignored
    await pushAt(5, inputs[2])
    expect(await arrivesWithin(session.lp, 500)).toBe(false)

    // a push from prev at the cache length runs at once and is answered as step 2, before the client sends it
    await pushAt(2, inputs[2])
    expect(resultOf(await session.next(), 2)).toEqual(expected[2])
    // the client's copy of step 2 gets no second answer: the next answer is step 3's
    await session.lp.write(step(2, 2, inputs[2], me))
    await session.lp.write(step(3, 3, inputs[3], me))
    expect(resultOf(await session.next(), 3)).toEqual(expected[3])

    // a malformed push frame ends our push stream; the session goes on
    await push.write(packValue({ type: 'push', sessionId: session.sessionId, position: 'four' }))
    await session.lp.write(step(4, 4, inputs[4], me))
    expect(resultOf(await session.next(), 4)).toEqual(expected[4])
    await session.lp.write(encodeClientMessage({ type: 'close' }))
    await expect(push.read({ signal: AbortSignal.timeout(5_000) })).rejects.toThrow()
  })

  it('runs a step sent without its input from the push it names: pushed before, pushed after, held, or missing', async () => {
    const inputs = [1, 2, 3, 4, 5].map(hidden)
    const expected = await controlResults(inputs)
    const { push, session, pushAt } = await pushedSession()
    expect(session.opened).toMatchObject({ takesPushedInput: true })
    await session.lp.write(step(0, 0, inputs[0], me))
    expect(resultOf(await session.next(), 0)).toEqual(expected[0])

    // the push first (run at once, answered as step 1), then the client's step 1 without input: no second answer
    await pushAt(1, inputs[1])
    expect(resultOf(await session.next(), 1)).toEqual(expected[1])
    await session.lp.write(stepWithoutInput(1, 1, me))
    expect(await arrivesWithin(session.lp, 300)).toBe(false)

    // the step without input first: it waits for its push, which is then answered as that step
    await session.lp.write(stepWithoutInput(2, 2, me))
    expect(await arrivesWithin(session.lp, 300)).toBe(false)
    await pushAt(2, inputs[2])
    expect(resultOf(await session.next(), 2)).toEqual(expected[2])

    // no push at all: push-missing after PUSH_WAIT_MS, the cache unchanged, and the same step with its input runs.
    // That step names a stranger as prev, so our next push is only held, not run
    const started = Date.now()
    await session.lp.write(stepWithoutInput(3, 3, me))
    expect(await session.next()).toMatchObject({ type: 'error', code: 'push-missing', stepId: 3 })
    expect(Date.now() - started).toBeGreaterThanOrEqual(PUSH_WAIT_MS - 50)
    const stranger = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    await session.lp.write(step(3, 3, inputs[3], stranger))
    expect(resultOf(await session.next(), 3)).toEqual(expected[3])

    // a push held because its sender was not prev runs when the client's step names that sender
    await pushAt(4, inputs[4])
    expect(await arrivesWithin(session.lp, 300)).toBe(false)
    await session.lp.write(stepWithoutInput(4, 4, me))
    expect(resultOf(await session.next(), 4)).toEqual(expected[4])

    // a step without input that does not follow the cache is out of order, as any step
    await session.lp.write(stepWithoutInput(5, 9, me))
    expect(await session.next()).toMatchObject({ type: 'error', code: 'out-of-order', stepId: 5 })
    await session.lp.write(encodeClientMessage({ type: 'close' }))
    await push.unwrap().close()
  })

  it('a client through two nodes with push on and off generates the local text, and the second node runs pushed steps', async () => {
    const local = await localGreedy(modelPath, PROMPT, GEN_TOKENS, 64)
    const logged = harness.nodes.map(n => n.stderr().length)
    const client = await Swarm.connect({ bootstrap: [harness.bootstrap] })
    try {
      const model = await client.model(modelPath)
      for (const serverToServer of [true, false]) {
        const generation = model.generate(PROMPT, { maxTokens: GEN_TOKENS, serverToServer })
        let result
        for (;;) {
          const next = await generation.next()
          if (next.done === true) { result = next.value; break }
        }
        expect(result.tokens).toEqual(local)
      }
    } finally {
      await client.close()
    }
    // every session logs how many of its steps came by push when it closes: one line per generation
    const pushedCounts = async (index: number): Promise<number[][]> => {
      for (let i = 0; i < 50; i++) {
        const text = harness.nodes[index].stderr().slice(logged[index])
        const counts = [...text.matchAll(/closed after \d+ tokens \((\d+) steps pushed, (\d+) client steps without input\)/g)]
          .map(m => [Number(m[1]), Number(m[2])])
        if (counts.length >= 2) return counts
        await new Promise(resolve => setTimeout(resolve, 100))
      }
      throw new Error(`node ${index} did not log its sessions:\n${harness.nodes[index].stderr()}`)
    }
    const [withPush, withoutPush] = await pushedCounts(1)
    // with push on, the decode steps came by push and the client sent them without their input
    expect(withPush[0]).toBeGreaterThan(0)
    expect(withPush[1]).toBeGreaterThan(0)
    expect(withoutPush).toEqual([0, 0])
    // the first span has no server before it
    expect(await pushedCounts(0)).toEqual([[0, 0], [0, 0]])
  })
})
