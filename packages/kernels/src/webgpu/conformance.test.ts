/**
 * WebGPU kernel conformance in the style of llama.cpp's test-backend-ops: every WGSL kernel against the CPU reference
 * (ops/reference.ts) over many shapes (odd sizes, sizes that are not multiples of the 32-element unit, the 64-thread
 * workgroup or the 4-token tile, T = 1 and T > 1) and every weight dtype, compared by normalized mean squared error
 * NMSE = sum((out - ref)^2) / sum(ref^2). Runs on lavapipe without a GPU (scripts/setup-lavapipe.sh).
 *
 * Tolerance: NMSE 1e-10 for every op and dtype. The kernels follow ggml's (and the reference's) activation handling:
 * f16/bf16 weights read the activation rounded to f16/bf16 (round to nearest even), q8_0/q4_0 weights a q8_0
 * activation (llama.cpp's x86 rounding, see ops/reference.ts), q4_K/q6_K a q8_K activation; integer block sums are
 * exact, so only the f32 (GPU) vs f64 (reference) accumulation and scaling differ.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as reference from '../ops/reference.js'
import { quantize } from '../quant/index.js'
import type { DType, RopeStyle, Tensor } from '../types.js'
import { createWebGpuExecutor } from './executor.js'
import { WebGpuOps } from './ops.js'
import { nmse, randomArray } from '../conformance-support.js'
import { SKIP_WEBGPU, testExecutor } from './test-support.js'

const MATMUL_TOLERANCE: Record<string, number> = { f32: 1e-10, f16: 1e-10, bf16: 1e-10, q8_0: 1e-10, q4_0: 1e-10, q4_K: 1e-10, q6_K: 1e-10 }
const MATMUL_COLS: Record<string, number[]> = {
  f32: [1, 7, 17, 64, 100, 257],
  f16: [1, 7, 17, 64, 100, 257],
  bf16: [3, 33, 130],
  q8_0: [32, 96, 160, 288, 2080],
  q4_0: [32, 96, 160, 288, 2080],
  q4_K: [256, 768, 2304],
  q6_K: [256, 768, 2304]
}
const MATMUL_ROWS = [1, 3, 7, 33, 130]
const TOKENS = [1, 2, 5, 9]

function weight (dtype: DType, rows: number, cols: number, seed: number): Tensor {
  const src = randomArray(rows * cols, seed)
  return { name: `w${seed}`, dtype, shape: [rows, cols], data: quantize(dtype, src, [rows, cols]) }
}

const worst: Record<string, number> = {}
function record (op: string, e: number): number {
  worst[op] = Math.max(worst[op] ?? 0, e)
  return e
}

afterAll(() => {
  console.log('worst NMSE per WebGPU op:\n' + Object.entries(worst).map(([op, e]) => `  ${op.padEnd(36)} ${e.toExponential(2)}`).join('\n'))
})

describe.skipIf(SKIP_WEBGPU)('WebGPU kernels vs the CPU reference', () => {
  let ops: WebGpuOps
  beforeAll(async () => { ops = new WebGpuOps(await testExecutor()) })

  describe.each(Object.keys(MATMUL_COLS))('matmul %s', (dtype) => {
    it('matches the reference over rows x cols x T (with and without bias)', async () => {
      let seed = 1
      let cases = 0
      for (const cols of MATMUL_COLS[dtype]) {
        for (const rows of MATMUL_ROWS) {
          for (const T of TOKENS) {
            if (cols > 1000 && rows > 33) continue
            const w = weight(dtype as DType, rows, cols, seed++)
            const x = randomArray(T * cols, seed++)
            const bias = T === 2 ? randomArray(rows, seed++) : undefined
            const ref = new Float32Array(T * rows)
            reference.matmul(ref, w, x, T, bias)
            const out = await ops.matmul(w, x, T, bias)
            const e = record(`matmul ${dtype}`, nmse(out, ref))
            if (!(e <= MATMUL_TOLERANCE[dtype])) {
              throw new Error(`matmul ${dtype} rows ${rows} cols ${cols} T ${T}: NMSE ${e} > ${MATMUL_TOLERANCE[dtype]}`)
            }
            cases++
          }
        }
      }
      expect(cases).toBeGreaterThan(40)
    })
  })

  it('rmsNorm', async () => {
    let seed = 1000
    for (const dim of [1, 3, 8, 67, 300, 2048]) {
      for (const T of [1, 3]) {
        const x = randomArray(T * dim, seed++, 3)
        const w = randomArray(dim, seed++)
        const ref = new Float32Array(T * dim)
        reference.rmsNorm(ref, x, w, T, dim, 1e-5)
        const out = await ops.rmsNorm(x, w, T, dim, 1e-5)
        expect(record('rmsNorm', nmse(out, ref)), `dim ${dim} T ${T}`).toBeLessThanOrEqual(1e-10)
      }
    }
  })

  it.each<RopeStyle>(['adjacent', 'halves'])('rope %s', async (style) => {
    let seed = 2000
    for (const [nHeads, headDim] of [[1, 2], [4, 6], [3, 16], [8, 64], [2, 10], [2, 128]]) {
      for (const [T, startPos] of [[1, 0], [1, 17], [3, 0], [5, 300], [70, 1000]]) {
        const half = headDim / 2
        const inv = new Float64Array(half)
        for (let j = 0; j < half; j++) inv[j] = Math.pow(10000, -(2 * j) / headDim)
        const x = randomArray(T * nHeads * headDim, seed++)
        const ref = Float32Array.from(x)
        reference.rope(ref, T, nHeads, headDim, startPos, inv, style)
        const out = await ops.rope(x, T, nHeads, headDim, startPos, inv, style)
        expect(record(`rope ${style}`, nmse(out, ref)), `heads ${nHeads} headDim ${headDim} T ${T} pos ${startPos}`).toBeLessThanOrEqual(1e-10)
      }
    }
  })

  it('attention with GQA over the KV cache (T = 1 and T > 1, causal, more keys than one 64-key tile)', async () => {
    let seed = 3000
    for (const [nHeads, nKvHeads, headDim] of [[1, 1, 4], [4, 2, 16], [8, 2, 64], [6, 3, 10], [32, 4, 64], [4, 4, 7], [2, 1, 128], [2, 2, 200]]) {
      for (const [T, startPos] of [[1, 0], [1, 9], [4, 0], [13, 5], [3, 40], [1, 130], [70, 60]]) {
        const maxLen = startPos + T + 3
        const kvDim = nKvHeads * headDim
        const q = randomArray(T * nHeads * headDim, seed++, 2)
        const k = randomArray(maxLen * kvDim, seed++, 2)
        const v = randomArray(maxLen * kvDim, seed++)
        const ref = new Float32Array(T * nHeads * headDim)
        reference.attention(ref, q, k, v, T, startPos, nHeads, nKvHeads, headDim)
        const out = await ops.attention(q, k, v, T, startPos, nHeads, nKvHeads, headDim)
        expect(record('attention', nmse(out, ref)), `${nHeads}/${nKvHeads}x${headDim} T ${T} pos ${startPos}`).toBeLessThanOrEqual(1e-10)
      }
    }
  })

  it('split attention (flash-decoding: keys over several workgroups, then combined) for decode steps', async () => {
    let seed = 3500
    for (const [nHeads, nKvHeads, headDim] of [[4, 2, 16], [8, 2, 64], [6, 3, 10], [2, 1, 128]]) {
      for (const [T, startPos, keysPerSplit] of [[1, 9, 4], [1, 130, 64], [1, 300, 100], [3, 40, 16], [4, 257, 256], [2, 5, 64]]) {
        const maxLen = startPos + T + 3
        const kvDim = nKvHeads * headDim
        const q = randomArray(T * nHeads * headDim, seed++, 2)
        const k = randomArray(maxLen * kvDim, seed++, 2)
        const v = randomArray(maxLen * kvDim, seed++)
        const ref = new Float32Array(T * nHeads * headDim)
        reference.attention(ref, q, k, v, T, startPos, nHeads, nKvHeads, headDim)
        const out = await ops.attention(q, k, v, T, startPos, nHeads, nKvHeads, headDim, keysPerSplit)
        expect(record('attention (split)', nmse(out, ref)), `${nHeads}/${nKvHeads}x${headDim} T ${T} pos ${startPos} split ${keysPerSplit}`).toBeLessThanOrEqual(1e-10)
      }
    }
  })

  it('attention softmax is stable for large scores', async () => {
    const [nHeads, nKvHeads, headDim, T] = [2, 1, 8, 80]
    const q = randomArray(T * nHeads * headDim, 1, 300)
    const k = randomArray(T * headDim, 2, 300)
    const v = randomArray(T * headDim, 3)
    const ref = new Float32Array(T * nHeads * headDim)
    reference.attention(ref, q, k, v, T, 0, nHeads, nKvHeads, headDim)
    const out = await ops.attention(q, k, v, T, 0, nHeads, nKvHeads, headDim)
    expect(out.every(Number.isFinite)).toBe(true)
    expect(record('attention', nmse(out, ref))).toBeLessThanOrEqual(1e-10)
    const split = await ops.attention(q.subarray((T - 1) * nHeads * headDim), k, v, 1, T - 1, nHeads, nKvHeads, headDim, 16)
    expect(split.every(Number.isFinite)).toBe(true)
    expect(record('attention (split)', nmse(split, ref.subarray((T - 1) * nHeads * headDim)))).toBeLessThanOrEqual(1e-10)
  })

  it('swiglu and add', async () => {
    let seed = 4000
    for (const n of [1, 5, 64, 1001, 5632, 70000]) {
      const g = randomArray(n, seed++, 6)
      const u = randomArray(n, seed++)
      const ref = new Float32Array(n)
      reference.swiglu(ref, g, u, n)
      expect(record('swiglu', nmse(await ops.swiglu(g, u, n), ref)), `swiglu ${n}`).toBeLessThanOrEqual(1e-10)
      const refAdd = new Float32Array(n)
      reference.add(refAdd, g, u, n)
      expect(record('add', nmse(await ops.add(g, u, n), refAdd)), `add ${n}`).toBe(0)
    }
  })
})

describe.skipIf(SKIP_WEBGPU)('quantized matmuls without the dot4I8Packed built-in (the WGSL fallback)', () => {
  it.each(['q8_0', 'q4_0', 'q4_K', 'q6_K'])('%s', async (dtype) => {
    await testExecutor() // points the loader at lavapipe, reports a missing adapter loudly
    const executor = await createWebGpuExecutor({ packedDot: false })
    try {
      const ops = new WebGpuOps(executor)
      let seed = 7000
      for (const cols of MATMUL_COLS[dtype].slice(0, 2)) {
        for (const [rows, T] of [[3, 1], [33, 5]]) {
          const w = weight(dtype as DType, rows, cols, seed++)
          const x = randomArray(T * cols, seed++)
          const ref = new Float32Array(T * rows)
          reference.matmul(ref, w, x, T)
          expect(record(`matmul ${dtype} (no dot4I8Packed)`, nmse(await ops.matmul(w, x, T), ref)), `rows ${rows} cols ${cols} T ${T}`).toBeLessThanOrEqual(1e-10)
        }
      }
    } finally {
      executor.close()
    }
  })
})

describe.skipIf(SKIP_WEBGPU)('weights larger than one storage binding go up as row chunks', () => {
  it.each(['f32', 'f16', 'q8_0', 'q4_K'])('%s split into 4 KiB buffers (with bias)', async (dtype) => {
    await testExecutor()
    const executor = await createWebGpuExecutor({ maxWeightChunkBytes: 4096 })
    try {
      const ops = new WebGpuOps(executor)
      const cols = dtype === 'q4_K' ? 512 : 288
      for (const [rows, T] of [[130, 1], [61, 6]]) {
        const w = weight(dtype as DType, rows, cols, rows)
        expect(executor.uploadWeight(w).chunks.length).toBeGreaterThan(1)
        const x = randomArray(T * cols, T)
        const bias = randomArray(rows, 3)
        const ref = new Float32Array(T * rows)
        reference.matmul(ref, w, x, T, bias)
        expect(record(`matmul ${dtype} (row chunks)`, nmse(await ops.matmul(w, x, T, bias), ref)), `rows ${rows} T ${T}`).toBeLessThanOrEqual(1e-10)
      }
    } finally {
      executor.close()
    }
  })
})
