/**
 * The node's compute (compute.ts) on a model big enough that a prefill takes many pieces: a step runs to the same
 * values as BlockStack.forward, requests run in arrival order, and stop() ends a long step at its next piece (the
 * step rejects with 'the node is stopping', and so does every later request).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BlockStack, openModel, PRESETS, randomWeights, selectBackend, syntheticVocab, writeGgufModel } from '@swarm/kernels'
import { Compute, ComputeError } from './compute.js'

const config = PRESETS.mid
const blocks: [number, number] = [1, 4]

let dir: string
let modelPath: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'node-compute-'))
  modelPath = join(dir, 'mid.gguf')
  await writeGgufModel(modelPath, config, randomWeights(config, 9), { dtype: 'q8_0', vocab: syntheticVocab() })
}, 120_000)

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

function hidden (T: number, seed: number): Float32Array {
  return Float32Array.from({ length: T * config.dim }, (_, i) => Math.sin(seed * 3.3 + i * 0.37) * 0.5)
}

describe('node compute', () => {
  it('runs a prefill in pieces and a decode step to forward\'s values, in arrival order', async () => {
    const compute = await Compute.start({ modelPath, blocks, threads: 1 })
    const source = await openModel(modelPath)
    const selected = await selectBackend('auto', { threads: 1 })
    const stack = await BlockStack.load(source, { start: blocks[0], end: blocks[1] }, { ops: selected.ops, threads: 1 })
    await source.close()
    try {
      await compute.call({ op: 'open', session: 's', blocks, maxLength: 80 })
      // issued together: the decode step must wait for the prefill
      const [prefill, decode] = await Promise.all([
        compute.call({ op: 'step', session: 's', blocks, hidden: hidden(64, 1), T: 64 }),
        compute.call({ op: 'step', session: 's', blocks, hidden: hidden(1, 2), T: 1 })
      ])
      const cache = stack.createCache(80)
      expect(prefill.hidden).toEqual(stack.forward(cache, hidden(64, 1), 64))
      expect(decode.hidden).toEqual(stack.forward(cache, hidden(1, 2), 1))
      expect(compute.busyMs).toBeGreaterThan(0)
      await compute.call({ op: 'close', session: 's' })
      await expect(compute.call({ op: 'step', session: 's', blocks, hidden: hidden(1, 3), T: 1 })).rejects.toThrow(/no cache for session s/)
    } finally {
      await compute.stop()
    }
  })

  it('stop() ends a long step at its next piece and refuses later requests', async () => {
    const compute = await Compute.start({ modelPath, blocks, threads: 1 })
    await compute.call({ op: 'open', session: 's', blocks, maxLength: 1024 })
    const long = compute.call({ op: 'step', session: 's', blocks, hidden: hidden(1000, 1), T: 1000 })
    const later = compute.call({ op: 'step', session: 's', blocks, hidden: hidden(1, 2), T: 1 })
    // the step is running by then: the timer fires when it hands the event loop back between pieces
    await new Promise(resolve => setTimeout(resolve, 30))
    await compute.stop()
    await expect(long).rejects.toThrow(ComputeError)
    await expect(long).rejects.toThrow(/the node is stopping/)
    await expect(later).rejects.toThrow(/the node is stopping/)
    await expect(compute.call({ op: 'open', session: 't', blocks, maxLength: 8 })).rejects.toThrow(/the node is stopping/)
  })
})
