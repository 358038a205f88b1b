/**
 * Backend conformance in the style of llama.cpp's test-backend-ops: every op of the wasm backend, with 1 and 2
 * threads, over many shapes (odd sizes, sizes that are not multiples of the SIMD width or of a block where the dtype
 * allows it, T = 1 and T > 1) and every dtype it supports, against the CPU reference, compared by normalized mean
 * squared error NMSE = sum((out - ref)^2) / sum(ref^2). Then whole models: logits of tiny random GGUF files through
 * the wasm backend against the reference backend.
 *
 * Tolerances (NMSE): f32-exact ops 1e-10 (only summation order and f32-vs-f64 accumulation differ); f16 weights 1e-5
 * (the reference rounds the activation to f16 first, as ggml does; the kernel multiplies by the f32 activation);
 * quantized weights 1e-9 (the activation is quantized with the same rounding as the reference, integer block sums are
 * exact, only the f32 block-sum accumulation differs); whole-model logits 1e-6 with equal argmax at every position.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BackendRegistry } from '../backend.js'
import { nmse, randomArray } from '../conformance-support.js'
import { PRESETS, randomWeights, writeGgufModel, type GgufModelDType } from '../fixtures/random-model.js'
import { openModel } from '../formats/index.js'
import { LocalModel } from '../model/index.js'
import * as reference from '../ops/reference.js'
import { quantize } from '../quant/index.js'
import { syntheticVocab } from '../tokenizer/vocab.js'
import type { DType, ModelConfig, RopeStyle, Tensor } from '../types.js'
import { createWasmBackend, type WasmBackend } from './backend.js'

const THREADS = [1, 2]
const backends = new Map<number, WasmBackend>()

beforeAll(async () => {
  for (const threads of THREADS) backends.set(threads, await createWasmBackend({ threads }))
})
afterAll(async () => {
  for (const b of backends.values()) await b.close()
})

function weight (dtype: DType, rows: number, cols: number, seed: number): Tensor {
  const src = randomArray(rows * cols, seed)
  return { name: `w${seed}`, dtype, shape: [rows, cols], data: quantize(dtype, src, [rows, cols]) }
}

const MATMUL_TOLERANCE: Record<string, number> = { f32: 1e-10, f16: 1e-5, q8_0: 1e-9, q4_0: 1e-9, q4_K: 1e-9, q6_K: 1e-9 }
/** per dtype: column counts (odd and non-multiples of the SIMD width where the block size allows) */
const MATMUL_COLS: Record<string, number[]> = {
  // 2049 and 4200: wider than a column tile (COL_TILE = 2048): two tiles, the second of one column; three tiles
  f32: [1, 7, 17, 64, 100, 257, 2049, 4200],
  f16: [1, 7, 17, 64, 100, 257, 2049, 4200],
  q8_0: [32, 96, 160, 288],
  q4_0: [32, 96, 160, 288],
  q4_K: [256, 768],
  q6_K: [256, 768]
}
const MATMUL_ROWS = [1, 3, 7, 33, 130]
const TOKENS = [1, 2, 4, 5, 9]

describe.each(THREADS)('wasm backend, %i thread(s)', (threads) => {
  const wasm = (): WasmBackend => backends.get(threads)!

  describe.each(Object.keys(MATMUL_COLS))('matmul %s', (dtype) => {
    it('matches the reference over rows x cols x T (with and without bias)', () => {
      let cases = 0
      let worst = 0
      let seed = 1
      for (const cols of MATMUL_COLS[dtype]) {
        for (const rows of MATMUL_ROWS) {
          for (const T of TOKENS) {
            const w = weight(dtype as DType, rows, cols, seed++)
            const x = randomArray(T * cols, seed++)
            const bias = T === 2 ? randomArray(rows, seed++) : undefined
            const ref = new Float32Array(T * rows)
            reference.matmul(ref, w, x, T, bias)
            const out = new Float32Array(T * rows).fill(NaN)
            wasm().matmul!(out, w, x, T, bias)
            const e = nmse(out, ref)
            worst = Math.max(worst, e)
            if (!(e <= MATMUL_TOLERANCE[dtype])) {
              throw new Error(`matmul ${dtype} rows ${rows} cols ${cols} T ${T}: NMSE ${e} > ${MATMUL_TOLERANCE[dtype]}`)
            }
            cases++
          }
        }
      }
      expect(cases).toBe(MATMUL_COLS[dtype].length * MATMUL_ROWS.length * TOKENS.length)
      expect(worst).toBeLessThanOrEqual(MATMUL_TOLERANCE[dtype])
    })

    it('reads a weight prepared into wasm memory (stored bytes, not f32)', () => {
      const cols = MATMUL_COLS[dtype][1]
      const w = weight(dtype as DType, 37, cols, 99)
      const prepared = wasm().prepareWeight(w)
      expect(prepared.data.byteLength).toBe(w.data.byteLength)
      expect(prepared.dtype).toBe(w.dtype)
      const x = randomArray(3 * cols, 5)
      const ref = new Float32Array(3 * 37)
      reference.matmul(ref, w, x, 3)
      // the reference reads the prepared view too (same bytes)
      const refPrepared = new Float32Array(3 * 37)
      reference.matmul(refPrepared, prepared, x, 3)
      expect(refPrepared).toEqual(ref)
      const out = new Float32Array(3 * 37)
      wasm().matmul!(out, prepared, x, 3)
      expect(nmse(out, ref)).toBeLessThanOrEqual(MATMUL_TOLERANCE[dtype])
    })
  })

  it('does not claim bf16 matmul (the registry falls back to the reference)', () => {
    expect(wasm().supportsOp('matmul', { dtype: 'bf16', shape: [4, 4] })).toBe(false)
  })

  it('rmsNorm', () => {
    let seed = 1000
    for (const dim of [1, 3, 8, 67, 2048]) {
      for (const T of [1, 3]) {
        const x = randomArray(T * dim, seed++, 3)
        const w = randomArray(dim, seed++)
        const ref = new Float32Array(T * dim)
        reference.rmsNorm(ref, x, w, T, dim, 1e-5)
        const out = new Float32Array(T * dim)
        wasm().rmsNorm!(out, x, w, T, dim, 1e-5)
        expect(nmse(out, ref), `dim ${dim} T ${T}`).toBeLessThanOrEqual(1e-10)
      }
    }
  })

  it.each<RopeStyle>(['adjacent', 'halves'])('rope %s', (style) => {
    let seed = 2000
    for (const [nHeads, headDim] of [[1, 2], [4, 6], [3, 16], [8, 64], [2, 10]]) {
      for (const [T, startPos] of [[1, 0], [1, 17], [3, 0], [5, 300]]) {
        const half = headDim / 2
        const inv = new Float64Array(half)
        for (let j = 0; j < half; j++) inv[j] = Math.pow(10000, -(2 * j) / headDim)
        const ref = randomArray(T * nHeads * headDim, seed++)
        const out = Float32Array.from(ref)
        reference.rope(ref, T, nHeads, headDim, startPos, inv, style)
        wasm().rope!(out, T, nHeads, headDim, startPos, inv, style)
        expect(nmse(out, ref), `heads ${nHeads} headDim ${headDim} T ${T} pos ${startPos}`).toBeLessThanOrEqual(1e-10)
      }
    }
  })

  it('attention with GQA over the KV cache (T = 1 and T > 1, causal)', () => {
    let seed = 3000
    for (const [nHeads, nKvHeads, headDim] of [[1, 1, 4], [4, 2, 16], [8, 2, 64], [6, 3, 10], [32, 4, 64], [4, 4, 7]]) {
      for (const [T, startPos] of [[1, 0], [1, 9], [4, 0], [13, 5], [3, 40]]) {
        const maxLen = startPos + T + 3
        const kvDim = nKvHeads * headDim
        const q = randomArray(T * nHeads * headDim, seed++, 2)
        const k = randomArray(maxLen * kvDim, seed++, 2)
        const v = randomArray(maxLen * kvDim, seed++)
        const ref = new Float32Array(T * nHeads * headDim)
        reference.attention(ref, q, k, v, T, startPos, nHeads, nKvHeads, headDim)
        const out = new Float32Array(T * nHeads * headDim).fill(NaN)
        wasm().attention!(out, q, k, v, T, startPos, nHeads, nKvHeads, headDim)
        expect(nmse(out, ref), `${nHeads}/${nKvHeads}x${headDim} T ${T} pos ${startPos}`).toBeLessThanOrEqual(1e-10)
      }
    }
  })

  it('attention softmax is stable for large scores', () => {
    const [nHeads, nKvHeads, headDim, T] = [2, 1, 8, 3]
    const q = randomArray(T * nHeads * headDim, 1, 300)
    const k = randomArray(T * headDim, 2, 300)
    const v = randomArray(T * headDim, 3)
    const ref = new Float32Array(T * nHeads * headDim)
    reference.attention(ref, q, k, v, T, 0, nHeads, nKvHeads, headDim)
    const out = new Float32Array(T * nHeads * headDim)
    wasm().attention!(out, q, k, v, T, 0, nHeads, nKvHeads, headDim)
    expect(out.every(Number.isFinite)).toBe(true)
    expect(nmse(out, ref)).toBeLessThanOrEqual(1e-10)
  })

  it('swiglu and add', () => {
    let seed = 4000
    for (const n of [1, 5, 64, 1001, 5632]) {
      const g = randomArray(n, seed++, 6)
      const u = randomArray(n, seed++)
      const ref = new Float32Array(n)
      reference.swiglu(ref, g, u, n)
      const out = new Float32Array(n)
      wasm().swiglu!(out, g, u, n)
      expect(nmse(out, ref), `swiglu ${n}`).toBeLessThanOrEqual(1e-10)
      const refAdd = new Float32Array(n)
      reference.add(refAdd, g, u, n)
      const outAdd = Float32Array.from(g)
      wasm().add!(outAdd, outAdd, u, n) // aliasing out = a, as the model does
      expect(nmse(outAdd, refAdd), `add ${n}`).toBe(0)
    }
  })
})

describe('column tiles', () => {
  it('a weight one wasm backend tiled is copied as is by another, and the reference refuses it', () => {
    const [a, b] = [backends.get(1)!, backends.get(2)!]
    const w = weight('f32', 9, 4200, 77)
    const tiled = a.prepareWeight(w)
    expect(tiled.layout).toBe('col-tiles')
    expect(a.prepareWeight(weight('f32', 9, 2048, 78)).layout).toBeUndefined()
    const x = randomArray(3 * 4200, 79)
    const ref = new Float32Array(3 * 9)
    reference.matmul(ref, w, x, 3)
    const out = new Float32Array(3 * 9).fill(NaN)
    b.matmul!(out, b.prepareWeight(tiled), x, 3)
    expect(nmse(out, ref)).toBeLessThanOrEqual(1e-10)
    expect(() => { reference.matmul(new Float32Array(27), tiled, x, 3) }).toThrow(/col-tiles/)
  })
})

describe('whole model through the wasm backend', () => {
  let dir: string
  beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'wasm-conformance-')) })
  afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

  // wide-tied: dim 2112 is wider than a column tile, so the wasm backend holds the tied embedding (and wq, wo, the
  // gate and up projections) in column tiles, and embedding lookups read rows across tiles
  const wide: ModelConfig = { ...PRESETS['tiny-tied'], name: 'wide-tied', dim: 2112, nHeads: 132, nKvHeads: 2, nLayers: 1 }
  const cases: Array<[string, GgufModelDType, ModelConfig]> = [
    ['tiny', 'f32', PRESETS.tiny], ['tiny', 'f16', PRESETS.tiny], ['tiny', 'q8_0', PRESETS.tiny], ['tiny', 'q4_0', PRESETS.tiny],
    ['tiny-qwen2', 'q8_0', PRESETS['tiny-qwen2']], ['tiny-tied', 'f32', PRESETS['tiny-tied']], ['wide-tied', 'f32', wide],
    ['wide-tied', 'f16', wide]
  ]
  it.each(cases)('%s %s: logits equal the reference backend, argmax equal at every position', async (name, dtype, config) => {
    const path = join(dir, `${name}-${dtype}.gguf`)
    await writeGgufModel(path, config, randomWeights(config, 11), { dtype, vocab: syntheticVocab() })
    const tokens = Array.from({ length: 12 }, (_, i) => (i * 37 + 5) % config.vocabSize)
    const source = await openModel(path)
    try {
      const refModel = await LocalModel.load(source, { ops: new BackendRegistry().ops(['cpu-reference']) })
      const refSession = refModel.createSession(32)
      const refLogits = [refSession.forward(tokens.slice(0, 9), { allLogits: true }), refSession.forward([tokens[9]]), refSession.forward([tokens[10]])]
      for (const threads of THREADS) {
        const registry = new BackendRegistry()
        registry.register(backends.get(threads)!, 10)
        const model = await LocalModel.load(source, { ops: registry.ops() })
        const session = model.createSession(32)
        const logits = [session.forward(tokens.slice(0, 9), { allLogits: true }), session.forward([tokens[9]]), session.forward([tokens[10]])]
        const V = config.vocabSize
        for (let i = 0; i < logits.length; i++) {
          expect(nmse(logits[i], refLogits[i]), `step ${i}, ${threads} threads`).toBeLessThanOrEqual(1e-6)
          for (let t = 0; t < logits[i].length / V; t++) {
            expect(argmax(logits[i].subarray(t * V, (t + 1) * V))).toBe(argmax(refLogits[i].subarray(t * V, (t + 1) * V)))
          }
        }
      }
    } finally {
      await source.close()
    }
  })
})

function argmax (a: Float32Array): number {
  let best = 0
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i
  return best
}
