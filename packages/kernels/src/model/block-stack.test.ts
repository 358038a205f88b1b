/**
 * BlockStack.forwardInPieces (a swarm node's way of running a step without holding its thread) against forward: the
 * same output bit for bit and the same cache afterwards, for every chunk size, on the WebAssembly kernels and the CPU
 * reference, over a sub-range of the stack as a node runs it; and a step stopped early, or failing, leaves the cache
 * where the step began.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PRESETS, randomWeights, writeGgufModel } from '../fixtures/random-model.js'
import { openModel } from '../formats/index.js'
import { syntheticVocab } from '../tokenizer/vocab.js'
import type { ModelConfig } from '../types.js'
import { selectBackend } from '../wasm/select.js'
import { BlockStack, type KvCache } from './index.js'

const WIDE: ModelConfig = { ...PRESETS.tiny, name: 'wide', dim: 256, ffnDim: 512, nHeads: 4, nKvHeads: 2, headDim: 64, nLayers: 4 }
const T = 13
const RANGE = { start: 1, end: 4 }

let dir: string
const stacks = new Map<string, BlockStack>()

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'block-stack-'))
  const path = join(dir, 'wide.gguf')
  await writeGgufModel(path, WIDE, randomWeights(WIDE, 3), { dtype: 'q8_0', vocab: syntheticVocab() })
  const source = await openModel(path)
  try {
    for (const choice of ['auto', 'cpu'] as const) {
      const selected = await selectBackend(choice, { threads: 1 })
      stacks.set(choice, await BlockStack.load(source, { start: 1, end: WIDE.nLayers }, { ops: selected.ops, threads: 1 }))
    }
  } finally {
    await source.close()
  }
})

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

function hidden (n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n * WIDE.dim }, (_, i) => Math.sin(seed * 7.1 + i * 0.37) * 0.5)
}

function runAll (pieces: Generator<number, Float32Array, void>): { out: Float32Array, yields: number[] } {
  const yields: number[] = []
  for (;;) {
    const r = pieces.next()
    if (r.done === true) return { out: r.value, yields }
    yields.push(r.value)
  }
}

/** a prompt of T tokens, then two decode steps; outputs of each and the cache contents */
function session (stack: BlockStack, step: (cache: KvCache, x: Float32Array, n: number) => Float32Array): { outs: Float32Array[], cache: KvCache } {
  const cache = stack.createCache(T + 4, RANGE)
  const outs = [step(cache, hidden(T, 1), T), step(cache, hidden(1, 2), 1), step(cache, hidden(1, 3), 1)]
  return { outs, cache }
}

describe.each(['auto', 'cpu'])('forwardInPieces on the %s ops', (choice) => {
  it.each([1, 3, 4, 5, 8, T])('chunks of %i tokens give forward\'s output and cache, bit for bit', (chunk) => {
    const stack = stacks.get(choice)!
    const ref = session(stack, (cache, x, n) => stack.forward(cache, x, n, RANGE))
    const nBlocks = RANGE.end - RANGE.start
    const got = session(stack, (cache, x, n) => {
      const { out, yields } = runAll(stack.forwardInPieces(cache, x, n, RANGE, () => chunk))
      // one yield per block per chunk, each reporting that chunk's tokens
      const chunks = Array.from({ length: Math.ceil(n / chunk) }, (_, i) => Math.min(chunk, n - i * chunk))
      expect(yields).toEqual(chunks.flatMap(c => Array(nBlocks).fill(c)))
      return out
    })
    expect(got.cache.length).toBe(ref.cache.length)
    for (let i = 0; i < ref.outs.length; i++) expect(got.outs[i]).toEqual(ref.outs[i])
    for (let b = 0; b < nBlocks; b++) {
      expect(got.cache.keys[b]).toEqual(ref.cache.keys[b])
      expect(got.cache.values[b]).toEqual(ref.cache.values[b])
    }
  })

  it('a step stopped after some pieces leaves the cache where it began, and the step can run again', () => {
    const stack = stacks.get(choice)!
    const cache = stack.createCache(T + 4, RANGE)
    stack.forward(cache, hidden(2, 5), 2, RANGE)
    const pieces = stack.forwardInPieces(cache, hidden(T, 1), T, RANGE, () => 4)
    for (let i = 0; i < 5; i++) pieces.next()
    // 5 pieces: the first chunk through all 3 blocks, the second through 2
    expect(cache.length).toBe(2 + 4)
    pieces.return(new Float32Array(0))
    expect(cache.length).toBe(2)
    const again = runAll(stack.forwardInPieces(cache, hidden(T, 1), T, RANGE, () => 4)).out
    const fresh = stack.createCache(T + 4, RANGE)
    stack.forward(fresh, hidden(2, 5), 2, RANGE)
    expect(again).toEqual(stack.forward(fresh, hidden(T, 1), T, RANGE))
  })

  it('refuses a step that does not fit the cache or the hidden size, before computing anything', () => {
    const stack = stacks.get(choice)!
    const cache = stack.createCache(4, RANGE)
    expect(() => stack.forwardInPieces(cache, hidden(5, 1), 5, RANGE).next()).toThrow(/maximum length/)
    expect(() => stack.forwardInPieces(cache, hidden(2, 1), 3, RANGE).next()).toThrow(/hidden states hold/)
    expect(cache.length).toBe(0)
  })
})
