/**
 * Failover stall: time from a fault (SIGKILL or SIGSTOP of a node on the live route) to the next generated token,
 * median and max per fault kind, over ROUNDS generations (env FAILOVER_ROUNDS, default 20) of 48 tokens.
 *   npm run bench:failover
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import { PRESETS, randomWeights, syntheticVocab, writeGgufModel } from '@swarm/kernels'
import { median, runChaos } from '../test/harness/chaos.js'
import { ensureBuilt } from '../test/harness/processes.js'

const ROUNDS = Number(process.env.FAILOVER_ROUNDS ?? 20)

it('prints the stall per failure', async () => {
  await ensureBuilt()
  const dir = await mkdtemp(join(tmpdir(), 'swarm-failover-'))
  try {
    const model = join(dir, 'tiny.gguf')
    await writeGgufModel(model, PRESETS.tiny, randomWeights(PRESETS.tiny, 11), { dtype: 'q8_0', vocab: syntheticVocab() })
    const rounds = await runChaos({
      model, prompt: 'Failover keeps the sentence going', genTokens: 48, rounds: ROUNDS, seed: Date.now() % 100_000,
      nodes: [{ blocks: [0, 3] }, { blocks: [0, 3] }, { blocks: [3, 6] }, { blocks: [3, 6] }, { blocks: [1, 5] }]
    })
    expect(rounds).toHaveLength(ROUNDS)
    const lines = ['fault   n   stall median   stall max   (from the signal to the next token)']
    for (const fault of ['kill', 'freeze'] as const) {
      const stalls = rounds.filter(r => r.fault === fault).map(r => r.stallMs)
      lines.push(`${fault.padEnd(7)} ${String(stalls.length).padStart(2)}   ${median(stalls).toFixed(0).padStart(9)} ms   ${Math.max(...stalls).toFixed(0).padStart(6)} ms`)
    }
    const recovery = rounds.flatMap(r => r.reroutes.map(e => e.recoveryMs))
    lines.push(`reroute (ban, new route, open, replay): median ${median(recovery).toFixed(0)} ms over ${recovery.length} reroutes`)
    console.log(lines.join('\n'))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
