/**
 * Failover under fire: generations over a swarm with redundant coverage, each hit by a fault (SIGKILL or SIGSTOP)
 * of a node on its current route at a random step. Used by test/chaos.test.ts (asserts the outputs) and
 * bench/failover.bench.ts (prints the stalls).
 */
import { runGeneration, Swarm, type RerouteEvent } from '@swarm/client'
import { createRandom } from '@swarm/kernels'
import { setup, type NodeSpec, type SwarmHarness } from './swarm.js'
import type { SwarmProcess } from './processes.js'

export type Fault = 'kill' | 'freeze'

export interface ChaosRound {
  fault: Fault
  /** the step after which the fault was injected */
  atStep: number
  victim: string
  tokens: number[]
  /** from the fault to the next token, ms */
  stallMs: number
  reroutes: RerouteEvent[]
}

export interface ChaosOptions {
  model: string
  prompt: string
  genTokens: number
  rounds: number
  seed: number
  /** node layout; every block must stay covered after any one node fails */
  nodes: NodeSpec[]
  log?: (message: string) => void
}

/** Runs `rounds` generations, each with one fault; restores the swarm after each. */
export async function runChaos (options: ChaosOptions): Promise<ChaosRound[]> {
  const random = createRandom(options.seed)
  const harness: SwarmHarness = await setup({ model: options.model, nodes: options.nodes })
  const nodes: Array<SwarmProcess & { spec: NodeSpec }> = harness.nodes.map((n, i) => Object.assign(n, { spec: options.nodes[i] }))
  const rounds: ChaosRound[] = []
  try {
    for (let round = 0; round < options.rounds; round++) {
      const fault: Fault = round % 2 === 0 ? 'kill' : 'freeze'
      const atStep = 1 + Math.floor(random() * (options.genTokens - 2))
      const client = await Swarm.connect({ bootstrap: [harness.bootstrap] })
      try {
        const model = await client.model(options.model)
        const reroutes: RerouteEvent[] = []
        const session = await model.inferenceSession({ maxLength: 128, onReroute: e => reroutes.push(e) })
        let step = 0
        let faultAt = 0
        let stallMs = NaN
        let victim = ''
        let victimIndex = -1
        const runner = model.runner(session)
        const result = await runGeneration({
          maxLength: runner.maxLength,
          forward: async tokens => {
            const logits = await runner.forward(tokens)
            if (faultAt > 0 && Number.isNaN(stallMs)) stallMs = performance.now() - faultAt
            if (++step === atStep) {
              // hit a node the route uses right now, so the fault matters
              const onRoute = session.route.map(r => r.peerId)
              const candidates = nodes.map((n, i) => [n, i] as const).filter(([n]) => onRoute.includes(n.ready.peerId))
              const [node, index] = candidates[Math.floor(random() * candidates.length)]
              victim = node.ready.peerId
              victimIndex = index
              faultAt = performance.now()
              node.kill(fault === 'kill' ? 'SIGKILL' : 'SIGSTOP')
            }
            return logits
          }
        }, model.tokenizer, options.prompt, { maxTokens: options.genTokens })
        await session.close()
        rounds.push({ fault, atStep, victim, tokens: result.tokens, stallMs, reroutes })
        options.log?.(`round ${round}: ${fault} of ${victim.slice(-6)} after step ${atStep}: stall ${stallMs.toFixed(0)} ms (reroute ${reroutes.map(r => r.recoveryMs.toFixed(0)).join(' + ')} ms), ${reroutes.length} reroute(s)`)
        // restore the layout: the victim is gone (or frozen); replace it with a fresh node of the same blocks
        if (victimIndex >= 0) {
          const old = nodes[victimIndex]
          old.kill('SIGKILL')
          await old.exited
          const fresh = await harness.addNode(old.spec)
          nodes[victimIndex] = Object.assign(fresh, { spec: old.spec })
        }
      } finally {
        await client.close()
      }
    }
  } finally {
    await harness.cleanup()
  }
  return rounds
}

export function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}
