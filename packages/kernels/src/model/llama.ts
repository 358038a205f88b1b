/**
 * The Llama-family transformer block (llama, mistral, qwen2), in the style of llama2.c's forward(): weights and run
 * state are plain records, the block is a flat sequence of op calls. Qwen2 adds q/k/v biases; GGUF llama/mistral
 * rotate adjacent pairs (permuted Q/K rows), Hugging Face checkpoints and GGUF qwen2 rotate halves.
 */
import type { Ops } from '../backend-types.js'
import type { ModelConfig, Tensor } from '../types.js'
import type { KvCache } from './kv-cache.js'

export interface BlockWeights {
  attnNorm: Float32Array // [dim]
  wq: Tensor // [nHeads * headDim, dim]
  wk: Tensor // [nKvHeads * headDim, dim]
  wv: Tensor // [nKvHeads * headDim, dim]
  bq?: Float32Array // [nHeads * headDim] (qwen2)
  bk?: Float32Array // [nKvHeads * headDim]
  bv?: Float32Array // [nKvHeads * headDim]
  wo: Tensor // [dim, nHeads * headDim]
  ffnNorm: Float32Array // [dim]
  wGate: Tensor // [ffnDim, dim]
  wUp: Tensor // [ffnDim, dim]
  wDown: Tensor // [dim, ffnDim]
}

/** Scratch buffers for T tokens, reused across blocks of one forward call. */
export interface RunState {
  T: number
  xb: Float32Array // [T, dim] normalized input
  q: Float32Array // [T, nHeads * headDim]
  k: Float32Array // [T, nKvHeads * headDim]
  v: Float32Array // [T, nKvHeads * headDim]
  att: Float32Array // [T, nHeads * headDim] attention output
  proj: Float32Array // [T, dim] output of wo / wDown
  gate: Float32Array // [T, ffnDim]
  up: Float32Array // [T, ffnDim]
}

export function createRunState (c: ModelConfig, T: number): RunState {
  const qDim = c.nHeads * c.headDim
  const kvDim = c.nKvHeads * c.headDim
  return {
    T,
    xb: new Float32Array(T * c.dim),
    q: new Float32Array(T * qDim),
    k: new Float32Array(T * kvDim),
    v: new Float32Array(T * kvDim),
    att: new Float32Array(T * qDim),
    proj: new Float32Array(T * c.dim),
    gate: new Float32Array(T * c.ffnDim),
    up: new Float32Array(T * c.ffnDim)
  }
}

/**
 * Runs one block over hidden states x [T, dim] in place, for tokens at positions startPos..startPos+T-1.
 * Writes their keys and values into `keys`/`values` (this block's cache slices) before attending.
 */
export function forwardBlock (ops: Ops, c: ModelConfig, w: BlockWeights, s: RunState, x: Float32Array,
  keys: Float32Array, values: Float32Array, startPos: number, invFreqs: Float64Array): void {
  const { T } = s
  const kvDim = c.nKvHeads * c.headDim

  // attention
  ops.rmsNorm(s.xb, x, w.attnNorm, T, c.dim, c.rmsNormEps)
  ops.matmul(s.q, w.wq, s.xb, T, w.bq)
  ops.matmul(s.k, w.wk, s.xb, T, w.bk)
  ops.matmul(s.v, w.wv, s.xb, T, w.bv)
  ops.rope(s.q, T, c.nHeads, c.headDim, startPos, invFreqs, c.ropeStyle)
  ops.rope(s.k, T, c.nKvHeads, c.headDim, startPos, invFreqs, c.ropeStyle)
  keys.set(s.k, startPos * kvDim)
  values.set(s.v, startPos * kvDim)
  ops.attention(s.att, s.q, keys, values, T, startPos, c.nHeads, c.nKvHeads, c.headDim)
  ops.matmul(s.proj, w.wo, s.att, T)
  ops.add(x, x, s.proj, T * c.dim)

  // feed-forward (SwiGLU)
  ops.rmsNorm(s.xb, x, w.ffnNorm, T, c.dim, c.rmsNormEps)
  ops.matmul(s.gate, w.wGate, s.xb, T)
  ops.matmul(s.up, w.wUp, s.xb, T)
  ops.swiglu(s.gate, s.gate, s.up, T * c.ffnDim)
  ops.matmul(s.proj, w.wDown, s.gate, T)
  ops.add(x, x, s.proj, T * c.dim)
}

/** Runs blocks over hidden states x [T, dim] in place and advances the cache by T positions. */
export function forwardBlocks (ops: Ops, c: ModelConfig, blocks: BlockWeights[], cache: KvCache,
  x: Float32Array, T: number, invFreqs: Float64Array): void {
  if (x.length !== T * c.dim) throw new Error(`hidden states hold ${x.length} values, expected ${T} x ${c.dim}`)
  const startPos = cache.length
  if (startPos + T > cache.maxLength) {
    throw new Error(`sequence of ${startPos + T} tokens exceeds the session's maximum length ${cache.maxLength}`)
  }
  const s = createRunState(c, T)
  for (let i = 0; i < blocks.length; i++) {
    forwardBlock(ops, c, blocks[i], s, x, cache.keys[i], cache.values[i], startPos, invFreqs)
  }
  cache.length = startPos + T
}
