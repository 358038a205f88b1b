/**
 * CPU reference ops: plain, readable TypeScript, one function per op. This is the oracle every faster backend is
 * checked against, so clarity wins over speed; accumulations that decide accuracy are done in float64.
 *
 * Layout conventions: activations are row-major Float32Array `[T, n]` (T tokens). Weights are `Tensor`s in their
 * stored dtype, shape `[rows, cols]`; `matmul` computes `out[t, r] = sum_c W[r, c] * x[t, c]`, the way ggml's CPU
 * backend does (the activation row is first converted to the weight dtype's dot type, see quant/).
 */
import { dotRow, prepareActivation, rowBytes } from '../quant/index.js'
import type { RopeStyle, Tensor } from '../types.js'

/**
 * Rounding of q8_0 activations (for q8_0 / q4_0 weights): llama.cpp's x86 builds (AVX/AVX2, the prebuilt oracle and
 * most CPUs running it) use id = 127/amax with round-half-even, not the portable path's 1/d with roundf; with 'ref'
 * one activation quant in some thousands lands one step apart and the logits drift by ~5e-2 from there on.
 */
const Q8_0_ACTIVATION_ROUNDING = 'avx'

/** out[T, rows] = x[T, cols] . W^T (+ bias[rows]) */
export function matmul (out: Float32Array, w: Tensor, x: Float32Array, T: number, bias?: Float32Array): void {
  // a backend's own layout (wasm column tiles) is for that backend's kernels only
  if (w.layout !== undefined) throw new Error(`the reference matmul reads row-major weights; ${w.name} is laid out as ${w.layout}`)
  const [rows, cols] = w.shape
  const bytesPerRow = rowBytes(w.dtype, cols)
  for (let t = 0; t < T; t++) {
    const xRow = prepareActivation(w.dtype, x, t * cols, cols, { q8_0Rounding: Q8_0_ACTIVATION_ROUNDING })
    for (let r = 0; r < rows; r++) {
      const dot = dotRow(w.dtype, w.data, r * bytesPerRow, xRow)
      out[t * rows + r] = bias === undefined ? dot : Math.fround(dot) + bias[r]
    }
  }
}

/** out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * weight, for each of T rows of `dim` */
export function rmsNorm (out: Float32Array, x: Float32Array, weight: Float32Array, T: number, dim: number, eps: number): void {
  for (let t = 0; t < T; t++) {
    const base = t * dim
    let sumSquares = 0
    for (let i = 0; i < dim; i++) sumSquares += x[base + i] * x[base + i]
    const scale = Math.fround(1 / Math.sqrt(sumSquares / dim + eps))
    for (let i = 0; i < dim; i++) out[base + i] = Math.fround(x[base + i] * scale) * weight[i]
  }
}

/**
 * Rotates each head of x[T, nHeads * headDim] in place by position `startPos + t`.
 * `invFreqs[j]` is the angle per position of pair j (headDim / 2 of them, scaling already applied).
 * 'adjacent' rotates (2j, 2j+1), 'halves' rotates (j, j + headDim/2).
 */
export function rope (x: Float32Array, T: number, nHeads: number, headDim: number, startPos: number,
  invFreqs: Float64Array, style: RopeStyle): void {
  const half = headDim / 2
  for (let t = 0; t < T; t++) {
    const pos = startPos + t
    for (let j = 0; j < half; j++) {
      const angle = pos * invFreqs[j]
      const cos = Math.cos(angle)
      const sin = Math.sin(angle)
      const [i0, i1] = style === 'adjacent' ? [2 * j, 2 * j + 1] : [j, j + half]
      for (let h = 0; h < nHeads; h++) {
        const base = (t * nHeads + h) * headDim
        const a = x[base + i0]
        const b = x[base + i1]
        x[base + i0] = a * cos - b * sin
        x[base + i1] = a * sin + b * cos
      }
    }
  }
}

/**
 * Causal self-attention of T new tokens at positions startPos.. over a KV cache that already holds their keys
 * and values. q: [T, nHeads * headDim]; kCache, vCache: [maxLen, nKvHeads * headDim]; out: [T, nHeads * headDim].
 * Query head h reads kv head floor(h / (nHeads / nKvHeads)) (GQA). Softmax is max-subtracted.
 */
export function attention (out: Float32Array, q: Float32Array, kCache: Float32Array, vCache: Float32Array, T: number,
  startPos: number, nHeads: number, nKvHeads: number, headDim: number): void {
  const groupSize = nHeads / nKvHeads
  const kvStride = nKvHeads * headDim
  const scale = 1 / Math.sqrt(headDim)
  const scores = new Float64Array(startPos + T)
  for (let t = 0; t < T; t++) {
    const nKeys = startPos + t + 1
    for (let h = 0; h < nHeads; h++) {
      const qBase = (t * nHeads + h) * headDim
      const kvOffset = Math.floor(h / groupSize) * headDim
      let max = -Infinity
      for (let s = 0; s < nKeys; s++) {
        const kBase = s * kvStride + kvOffset
        let dot = 0
        for (let i = 0; i < headDim; i++) dot += q[qBase + i] * kCache[kBase + i]
        scores[s] = Math.fround(dot) * scale
        if (scores[s] > max) max = scores[s]
      }
      let sum = 0
      for (let s = 0; s < nKeys; s++) {
        scores[s] = Math.exp(scores[s] - max)
        sum += scores[s]
      }
      for (let i = 0; i < headDim; i++) {
        let acc = 0
        for (let s = 0; s < nKeys; s++) acc += scores[s] * vCache[s * kvStride + kvOffset + i]
        out[qBase + i] = acc / sum
      }
    }
  }
}

/** out = silu(gate) * up, elementwise over n values */
export function swiglu (out: Float32Array, gate: Float32Array, up: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i]
    out[i] = Math.fround(g / (1 + Math.exp(-g))) * up[i]
  }
}

/** out = a + b, elementwise over n values (out may alias a) */
export function add (out: Float32Array, a: Float32Array, b: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] = a[i] + b[i]
}
