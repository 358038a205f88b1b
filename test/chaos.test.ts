/**
 * Failover: 20 generations of 48 tokens over a swarm with redundant coverage; in each, a random node of the live
 * route is killed (SIGKILL) or frozen (SIGSTOP) at a random step. Every generation must complete with exactly the
 * fault-free greedy output, after at least one reroute.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { median, runChaos } from './harness/chaos.js'
import { ensureBuilt } from './harness/processes.js'
import { localGreedy, writeTinyModel } from './harness/local.js'

const PROMPT = 'Failover keeps the sentence going'
const GEN_TOKENS = 48
const ROUNDS = 20

let dir: string
let modelPath: string
let expected: number[]

beforeAll(async () => {
  await ensureBuilt()
  dir = await mkdtemp(join(tmpdir(), 'swarm-chaos-'))
  modelPath = await writeTinyModel(dir, 11)
  expected = await localGreedy(modelPath, PROMPT, GEN_TOKENS, 128)
  expect(expected).toHaveLength(GEN_TOKENS)
})

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

describe('chaos: a node dies or hangs mid-generation', () => {
  it(`${ROUNDS} generations of ${GEN_TOKENS} tokens, each with a kill or a freeze, all equal the fault-free output`, async () => {
    const rounds = await runChaos({
      model: modelPath,
      prompt: PROMPT,
      genTokens: GEN_TOKENS,
      rounds: ROUNDS,
      seed: 2026,
      // every block is served twice or more, and [1, 5) makes reroutes enter ranges mid-span
      nodes: [{ blocks: [0, 3] }, { blocks: [0, 3] }, { blocks: [3, 6] }, { blocks: [3, 6] }, { blocks: [1, 5] }],
      log: message => { console.log(`[chaos] ${message}`) }
    })
    expect(rounds).toHaveLength(ROUNDS)
    for (const [i, round] of rounds.entries()) {
      expect(round.tokens, `round ${i} (${round.fault} after step ${round.atStep})`).toEqual(expected)
      expect(round.reroutes.length, `round ${i} rerouted`).toBeGreaterThanOrEqual(1)
      expect(round.reroutes[0].failedPeer).toBe(round.victim)
      // a frozen node keeps its TCP connections open: only the client's pings while it waits on the node find it
      // (a killed one is found by its connection's end, without a ping)
      if (round.fault === 'freeze') expect(round.reroutes[0].reason, `round ${i}`).toMatch(/no answer to a ping within 1000 ms/)
      else expect(round.reroutes[0].reason, `round ${i}`).not.toMatch(/ping/)
    }
    for (const fault of ['kill', 'freeze'] as const) {
      const stalls = rounds.filter(r => r.fault === fault).map(r => r.stallMs)
      console.log(`[chaos] ${fault}: ${stalls.length} faults, stall median ${median(stalls).toFixed(0)} ms, max ${Math.max(...stalls).toFixed(0)} ms`)
    }
  }, 600_000)
})
