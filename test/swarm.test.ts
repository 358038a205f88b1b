/**
 * The swarm end to end, with real processes on loopback: a `swarm-node dht` bootstrap peer and `swarm-node serve`
 * nodes (TCP, noise, yamux, kad-dht), driven by the `swarm` CLI and by the SDK. A model split across nodes must
 * generate exactly what one process generates.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LocalModel, loadTokenizer, openModel, PRESETS } from '@swarm/kernels'
import { MissingBlocksError, runGeneration, Swarm } from '@swarm/client'
import { ensureBuilt, runCli, swarmCli, type CliRun } from './harness/processes.js'
import { setup, type SwarmHarness } from './harness/swarm.js'
import { swarmDefaultOps, writeTinyModel } from './harness/local.js'

const PROMPT = 'The swarm keeps every block'
const GEN_TOKENS = 32

const swarm = async (...args: string[]): Promise<CliRun> => await runCli(swarmCli, args)

let dir: string
let modelPath: string
let nLayers: number
let localTokens: number[]
let localLogits: Float32Array
const logitTokens = [1, 17, 42, 99, 5, 300, 7, 8]

beforeAll(async () => {
  await ensureBuilt()
  dir = await mkdtemp(join(tmpdir(), 'swarm-test-'))
  modelPath = await writeTinyModel(dir, 7)
  nLayers = PRESETS.tiny.nLayers
  // the reference: the whole model in this process
  const source = await openModel(modelPath)
  const tokenizer = await loadTokenizer(source)
  const model = await LocalModel.load(source, await swarmDefaultOps())
  const result = await runGeneration(model.createSession(128), tokenizer, PROMPT, { maxTokens: GEN_TOKENS })
  localTokens = result.tokens
  localLogits = model.createSession(16).forward(logitTokens, { allLogits: true })
  await source.close()
  expect(localTokens).toHaveLength(GEN_TOKENS)
})

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

function maxAbsDiff (a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length)
  let max = 0
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]))
  return max
}

describe('three nodes serving [0, 2), [2, 5), [5, L)', () => {
  let harness: SwarmHarness
  beforeAll(async () => {
    harness = await setup({ model: modelPath, nodes: [{ blocks: [0, 2] }, { blocks: [2, 5] }, { blocks: [5, nLayers] }] })
  })
  afterAll(async () => { await harness?.cleanup() })

  it('swarm generate --bootstrap equals the local run token for token (greedy, 32 tokens)', async () => {
    const run = await swarm('generate', '--bootstrap', harness.bootstrap, '--model', modelPath, '--prompt', PROMPT,
      '--max-tokens', String(GEN_TOKENS), '--json')
    expect(run.code, run.stderr).toBe(0)
    const result = JSON.parse(run.stdout) as { tokens: number[] }
    expect(result.tokens).toEqual(localTokens)
  })

  it('swarm logits --bootstrap equals local logits within 1e-4 at every position', async () => {
    const run = await swarm('logits', '--bootstrap', harness.bootstrap, '--model', modelPath, '--tokens', logitTokens.join(','))
    expect(run.code, run.stderr).toBe(0)
    const rows = (JSON.parse(run.stdout) as { logits: number[][] }).logits
    expect(rows).toHaveLength(logitTokens.length)
    expect(maxAbsDiff(rows.flat(), localLogits)).toBeLessThanOrEqual(1e-4)
  })

  it('the SDK routes through all three nodes and streams the same text', async () => {
    const client = await Swarm.connect({ bootstrap: [harness.bootstrap] })
    try {
      const model = await client.model(modelPath)
      const session = await model.inferenceSession({ maxLength: 64 })
      expect(session.route).toEqual([
        { peerId: harness.nodes[0].ready.peerId, blocks: [0, 2] },
        { peerId: harness.nodes[1].ready.peerId, blocks: [2, 5] },
        { peerId: harness.nodes[2].ready.peerId, blocks: [5, nLayers] }
      ])
      await session.close()
      const generation = model.generate(PROMPT, { maxTokens: GEN_TOKENS })
      let text = ''
      let result
      for (;;) {
        const step = await generation.next()
        if (step.done === true) { result = step.value; break }
        text += step.value
      }
      expect(result.tokens).toEqual(localTokens)
      expect(text).toBe(result.text)
    } finally {
      await client.close()
    }
  })

  it('swarm status lists the three nodes and no uncovered block', async () => {
    const run = await swarm('status', '--bootstrap', harness.bootstrap, '--model', modelPath, '--json')
    expect(run.code, run.stderr).toBe(0)
    const { models } = JSON.parse(run.stdout) as { models: Array<{ peers: Array<{ peerId: string, blocks: number[], state: string }>, missing: unknown[] }> }
    expect(models).toHaveLength(1)
    expect(models[0].peers.map(p => [p.peerId, p.blocks, p.state]).sort()).toEqual(
      harness.nodes.map(n => [n.ready.peerId, n.ready.blocks, 'online']).sort())
    expect(models[0].missing).toEqual([])
  })
})

describe('overlapping and uneven ranges', () => {
  let harness: SwarmHarness
  beforeAll(async () => {
    // no node boundary at 3 or 4: any route enters the second node mid-range or leaves the first one early
    harness = await setup({ model: modelPath, nodes: [{ blocks: [0, 4] }, { blocks: [2, nLayers] }] })
  })
  afterAll(async () => { await harness?.cleanup() })

  it('routes over two overlapping nodes and equals the local run', async () => {
    const client = await Swarm.connect({ bootstrap: [harness.bootstrap] })
    try {
      const model = await client.model(modelPath)
      const session = await model.inferenceSession({ maxLength: 64 })
      const route = session.route
      expect(route).toHaveLength(2)
      expect(route[0].blocks[0]).toBe(0)
      expect(route[0].blocks[1]).toBe(route[1].blocks[0])
      expect(route[1].blocks[1]).toBe(nLayers)
      expect(route[0].peerId).toBe(harness.nodes[0].ready.peerId)
      expect(route[1].peerId).toBe(harness.nodes[1].ready.peerId)
      await session.close()
      const result = await runGeneration(model.runner(await model.inferenceSession({ maxLength: 64 })), model.tokenizer, PROMPT, { maxTokens: GEN_TOKENS })
      expect(result.tokens).toEqual(localTokens)
    } finally {
      await client.close()
    }
  })
})

describe('two nodes with the same range', () => {
  let harness: SwarmHarness
  beforeAll(async () => {
    // each node's cache holds one session of 64 tokens over all its blocks
    const args = ['--cache-tokens', '64']
    harness = await setup({ model: modelPath, nodes: [{ blocks: [0, nLayers], args }, { blocks: [0, nLayers], args }] })
  })
  afterAll(async () => { await harness?.cleanup() })

  it('one route uses one node; a second client that finds it full uses the other; both equal the local run', async () => {
    const a = await Swarm.connect({ bootstrap: [harness.bootstrap] })
    const b = await Swarm.connect({ bootstrap: [harness.bootstrap] })
    try {
      const modelA = await a.model(modelPath)
      const modelB = await b.model(modelPath)
      const sessionA = await modelA.inferenceSession({ maxLength: 64 })
      const sessionB = await modelB.inferenceSession({ maxLength: 64 })
      expect(sessionA.route).toHaveLength(1)
      expect(sessionB.route).toHaveLength(1)
      const peers = [sessionA.route[0].peerId, sessionB.route[0].peerId].sort()
      expect(peers).toEqual(harness.nodes.map(n => n.ready.peerId).sort())
      const [ra, rb] = await Promise.all([
        runGeneration(modelA.runner(sessionA), modelA.tokenizer, PROMPT, { maxTokens: GEN_TOKENS }),
        runGeneration(modelB.runner(sessionB), modelB.tokenizer, PROMPT, { maxTokens: GEN_TOKENS })
      ])
      expect(ra.tokens).toEqual(localTokens)
      expect(rb.tokens).toEqual(localTokens)
    } finally {
      await Promise.all([a.close(), b.close()])
    }
  })
})

describe('a block with no server', () => {
  let harness: SwarmHarness
  beforeAll(async () => {
    harness = await setup({ model: modelPath, nodes: [{ blocks: [0, 2] }, { blocks: [3, nLayers] }] })
  })
  afterAll(async () => { await harness?.cleanup() })

  it('the SDK throws MissingBlocksError naming block 2, and refuses a retry policy out of range', async () => {
    const client = await Swarm.connect({ bootstrap: [harness.bootstrap] })
    try {
      const model = await client.model(modelPath)
      const error = await model.inferenceSession({ maxLength: 16, retry: { noRouteWaitMs: 0 } }).then(() => undefined, (err: unknown) => err)
      expect(error).toBeInstanceOf(MissingBlocksError)
      expect((error as MissingBlocksError).missing).toEqual([[2, 3]])
      expect((error as Error).message).toMatch(/no server for block 2\b/)
      // a retry policy out of range is refused before anything is routed or opened
      for (const [retry, message] of [
        [{ probeAfterMs: 0 }, /retry\.probeAfterMs must be a number of ms > 0, got 0/],
        [{ probeTimeoutMs: Number.NaN }, /retry\.probeTimeoutMs must be a number of ms > 0, got NaN/],
        [{ noRouteWaitMs: -1 }, /retry\.noRouteWaitMs must be a number of ms >= 0, got -1/],
        [{ maxReroutes: 1.5 }, /retry\.maxReroutes must be an integer >= 0, got 1\.5/],
        [{ stepTimeout: 5 }, /unknown retry option stepTimeout/]
      ] as const) {
        await expect(model.inferenceSession({ maxLength: 16, retry: retry as object })).rejects.toThrow(message)
      }
    } finally {
      await client.close()
    }
  })

  it('swarm generate fails with one line naming the missing block', async () => {
    const run = await swarm('generate', '--bootstrap', harness.bootstrap, '--model', modelPath, '--prompt', 'hi', '--max-tokens', '4')
    expect(run.code, run.stderr).toBe(1)
    expect(run.stderr.trim().split('\n')).toHaveLength(1)
    expect(run.stderr).toMatch(/^swarm: no server for block 2 of this model/)
  })

  it('swarm status reports block 2 as served by nobody', async () => {
    const run = await swarm('status', '--bootstrap', harness.bootstrap, '--model', modelPath)
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toMatch(/blocks with no server: 2\n/)
  })
})

describe('node lifecycle', () => {
  let harness: SwarmHarness
  let keyFile: string
  beforeAll(async () => {
    keyFile = join(dir, 'node.key')
    harness = await setup({ model: modelPath, nodes: [{ blocks: [0, nLayers], args: ['--key', keyFile] }, { blocks: [0, nLayers] }] })
  })
  afterAll(async () => { await harness?.cleanup() })

  it('SIGTERM: the node announces offline, exits 0, and clients route around it', async () => {
    const [keyed, other] = harness.nodes
    keyed.kill('SIGTERM')
    expect(await keyed.exited).toBe(0)
    expect(keyed.stderr()).toMatch(/going offline/)
    const client = await Swarm.connect({ bootstrap: [harness.bootstrap] })
    try {
      const model = await client.model(modelPath)
      // its last record says offline, so the view holds only the other node
      expect(model.view.servers.map(s => s.peerId)).toEqual([other.ready.peerId])
      const result = await runGeneration(model.runner(await model.inferenceSession({ maxLength: 64 })), model.tokenizer, PROMPT, { maxTokens: 8 })
      expect(result.tokens).toEqual(localTokens.slice(0, 8))
    } finally {
      await client.close()
    }
  })

  it('--key keeps the peer identity across restarts', async () => {
    const before = harness.nodes[0].ready.peerId
    const again = await harness.addNode({ blocks: [0, nLayers], args: ['--key', keyFile] })
    expect(again.ready.peerId).toBe(before)
  })
})

describe('a hung node', () => {
  let harness: SwarmHarness
  beforeAll(async () => {
    harness = await setup({ model: modelPath, nodes: [{ blocks: [0, nLayers] }, { blocks: [0, nLayers] }, { blocks: [0, 3] }] })
  })
  afterAll(async () => {
    for (const node of harness?.nodes ?? []) node.kill('SIGCONT')
    await harness?.cleanup()
  })

  it('a node joins while another is frozen (SIGSTOP); a client that connects then sees every other server and generates exactly', async () => {
    const [hung, ...rest] = harness.nodes
    hung.kill('SIGSTOP')
    try {
      // its announcement and provider record go out while the frozen node sits in every DHT query
      const joined = await harness.addNode({ blocks: [3, nLayers] })
      const others = [...rest, joined]
      // the frozen node still sits in every DHT routing table and near every key: a DHT get of the others' records
      // waits for it and used to time out, which left this client with no server at all
      const client = await Swarm.connect({ bootstrap: [harness.bootstrap] })
      try {
        const model = await client.model(modelPath)
        expect(model.view.servers.map(s => s.peerId).sort()).toEqual(others.map(n => n.ready.peerId).sort())
        const result = await runGeneration(model.runner(await model.inferenceSession({ maxLength: 64 })), model.tokenizer, PROMPT, { maxTokens: 8 })
        expect(result.tokens).toEqual(localTokens.slice(0, 8))
        // a refresh leaves banned peers out; the view keeps the others
        model.view.ban(others[1].ready.peerId)
        await model.view.refresh()
        expect(model.view.servers.map(s => s.peerId).sort()).toEqual([others[0].ready.peerId, joined.ready.peerId].sort())
      } finally {
        await client.close()
      }
    } finally {
      hung.kill('SIGCONT')
    }
  })
})
