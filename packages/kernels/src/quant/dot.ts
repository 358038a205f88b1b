/**
 * The dot product llama.cpp's CPU matmul computes: the activation row is first converted to the weight type's
 * vec_dot_type (f32 -> f32, f16 -> f16, bf16 -> bf16, q8_0/q4_0 -> q8_0, q4_K/q6_K -> q8_K), then each block's
 * integer dot is scaled by the product of the block scales. Integer block sums are exact; the per-block scale
 * product is rounded to f32 as in ggml; the sum over blocks is accumulated in f64 (ggml uses f32 there).
 */
import type { DType } from '../types.js'
import { QuantLayoutError, UnsupportedDTypeError } from './errors.js'
import { rowBytes, QK_K } from './dtypes.js'
import * as half from './half.js'
import * as ops from './float-ops.js'
import type { Q8_0Rounding } from './quantize.js'
import { getScaleMinK4 as getScaleMinK4Imported } from './dequantize.js'

// Module-local bindings for the hot loops (transpilers such as vitest's turn imported names into property reads).
const F16_TO_F32 = half.F16_TO_F32
const { bf16ToF32, f32ToBf16, f32ToF16 } = half
const { cmax, nearestInt, roundEven, roundf } = ops
const f = Math.fround
const getScaleMinK4 = getScaleMinK4Imported

/** ggml's vec_dot_type: the format an activation row is converted to before a dot with weights of each dtype. */
export type VecDotType = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q8_K'

export const VEC_DOT_TYPE: Readonly<Record<DType, VecDotType>> = {
  f32: 'f32', f16: 'f16', bf16: 'bf16', q8_0: 'q8_0', q4_0: 'q8_0', q4_K: 'q8_K', q6_K: 'q8_K'
}

/** An activation row converted to f32 (copy), or to f16/bf16 (values already rounded, held as f32). */
export interface PreparedFloatActivation {
  kind: 'f32' | 'f16' | 'bf16'
  cols: number
  values: Float32Array
}

/** An activation row as q8_0 blocks: 32 int8 quants per block, block scale d (an f16 value) per block. */
export interface PreparedQ8_0Activation {
  kind: 'q8_0'
  cols: number
  /** [cols] */
  qs: Int8Array
  /** [cols / 32] f16 scales decoded to f32 */
  d: Float32Array
}

/** An activation row as q8_K blocks: 256 int8 quants, an f32 scale and 16 sums of 16 quants per block. */
export interface PreparedQ8KActivation {
  kind: 'q8_K'
  cols: number
  /** [cols] */
  qs: Int8Array
  /** [cols / 256] */
  d: Float32Array
  /** [cols / 16] */
  bsums: Int16Array
}

/** An activation row in the vec_dot_type of some weight dtype; produce with `prepareActivation`. */
export type PreparedActivation = PreparedFloatActivation | PreparedQ8_0Activation | PreparedQ8KActivation

export interface PrepareActivationOptions {
  /**
   * Rounding of q8_0 activations (for q8_0 and q4_0 weights). 'ref' (default) matches ggml's portable path;
   * 'avx' matches llama.cpp's x86 AVX/AVX2 builds. See `Q8_0Rounding`.
   */
  q8_0Rounding?: Q8_0Rounding
}

/** Convert `cols` activations from `x[xOffset..]` to the vec_dot_type of `weightDtype`, as ggml's from_float does. */
export function prepareActivation (weightDtype: DType, x: Float32Array, xOffset: number, cols: number,
  options: PrepareActivationOptions = {}): PreparedActivation {
  const kind = VEC_DOT_TYPE[weightDtype]
  if (kind === undefined) throw new UnsupportedDTypeError(`unsupported weight dtype '${String(weightDtype)}'`)
  rowBytes(weightDtype, cols) // validates cols against the weight's block size
  if (xOffset < 0 || xOffset + cols > x.length) {
    throw new QuantLayoutError(`activation of ${x.length} has no ${cols} values at ${xOffset}`)
  }
  switch (kind) {
    case 'f32':
      return { kind, cols, values: x.slice(xOffset, xOffset + cols) }
    case 'f16': {
      const values = new Float32Array(cols)
      for (let i = 0; i < cols; i++) values[i] = F16_TO_F32[f32ToF16(x[xOffset + i])]
      return { kind, cols, values }
    }
    case 'bf16': {
      const values = new Float32Array(cols)
      for (let i = 0; i < cols; i++) values[i] = bf16ToF32(f32ToBf16(x[xOffset + i]))
      return { kind, cols, values }
    }
    case 'q8_0':
      return prepareQ8_0(x, xOffset, cols, options.q8_0Rounding ?? 'ref')
    case 'q8_K':
      return prepareQ8K(x, xOffset, cols)
  }
}

function prepareQ8_0 (x: Float32Array, off: number, cols: number, rounding: Q8_0Rounding): PreparedQ8_0Activation {
  const qs = new Int8Array(cols)
  const d = new Float32Array(cols / 32)
  for (let b = 0, ib = 0; b < cols; b += 32, ib++) {
    let amax = 0
    for (let j = 0; j < 32; j++) amax = cmax(amax, Math.abs(x[off + b + j]))
    const dBlock = f(amax / 127)
    d[ib] = F16_TO_F32[f32ToF16(dBlock)]
    if (rounding === 'ref') {
      const id = dBlock !== 0 ? f(1 / dBlock) : 0
      for (let j = 0; j < 32; j++) qs[b + j] = roundf(f(x[off + b + j] * id))
    } else {
      const id = amax !== 0 ? f(127 / amax) : 0
      for (let j = 0; j < 32; j++) qs[b + j] = roundEven(f(x[off + b + j] * id))
    }
  }
  return { kind: 'q8_0', cols, qs, d }
}

// quantize_row_q8_K_ref (see quantizeRowQ8K for the byte form)
function prepareQ8K (x: Float32Array, off: number, cols: number): PreparedQ8KActivation {
  const qs = new Int8Array(cols)
  const d = new Float32Array(cols / QK_K)
  const bsums = new Int16Array(cols / 16)
  for (let b = 0, ib = 0; b < cols; b += QK_K, ib++) {
    let max = 0
    let amax = 0
    for (let j = 0; j < QK_K; j++) {
      const ax = Math.abs(x[off + b + j])
      if (ax > amax) {
        amax = ax
        max = x[off + b + j]
      }
    }
    if (amax === 0) continue // d = 0, quants and sums 0
    const iscale = f(-127 / max)
    for (let j = 0; j < QK_K; j++) qs[b + j] = Math.min(127, nearestInt(f(iscale * x[off + b + j])))
    for (let g = 0; g < QK_K; g += 16) {
      let sum = 0
      for (let i = 0; i < 16; i++) sum += qs[b + g + i]
      bsums[(b + g) >> 4] = sum
    }
    d[ib] = f(1 / iscale)
  }
  return { kind: 'q8_K', cols, qs, d, bsums }
}

/**
 * Dot product of one weight row (`cols` = x.cols elements of `weightDtype` at `w[rowByteOffset..]`) with a
 * prepared activation, computed as ggml's ggml_vec_dot_<weight>_<vec_dot_type>.
 */
export function dotRow (weightDtype: DType, w: Uint8Array, rowByteOffset: number, x: PreparedActivation): number {
  const kind = VEC_DOT_TYPE[weightDtype]
  if (kind === undefined) throw new UnsupportedDTypeError(`unsupported weight dtype '${String(weightDtype)}'`)
  if (x.kind !== kind) {
    throw new QuantLayoutError(`${weightDtype} weights need a ${kind} activation, got ${x.kind}`)
  }
  const cols = x.cols
  const nbytes = rowBytes(weightDtype, cols)
  if (rowByteOffset < 0 || rowByteOffset + nbytes > w.length) {
    throw new QuantLayoutError(`${weightDtype} row of ${cols} needs ${nbytes} bytes at ${rowByteOffset}, buffer has ${w.length}`)
  }
  switch (weightDtype) {
    case 'f32': return dotF32(w, rowByteOffset, (x as PreparedFloatActivation).values)
    case 'f16': return dotF16(w, rowByteOffset, (x as PreparedFloatActivation).values)
    case 'bf16': return dotBf16(w, rowByteOffset, (x as PreparedFloatActivation).values)
    case 'q8_0': return dotQ8_0(w, rowByteOffset, x as PreparedQ8_0Activation)
    case 'q4_0': return dotQ4_0(w, rowByteOffset, x as PreparedQ8_0Activation)
    case 'q4_K': return dotQ4K(w, rowByteOffset, x as PreparedQ8KActivation)
    case 'q6_K': return dotQ6K(w, rowByteOffset, x as PreparedQ8KActivation)
  }
}

function dotF32 (w: Uint8Array, off: number, x: Float32Array): number {
  const n = x.length
  const abs = w.byteOffset + off
  let sum = 0
  if (abs % 4 === 0) {
    const row = new Float32Array(w.buffer, abs, n)
    for (let i = 0; i < n; i++) sum += row[i] * x[i]
  } else {
    const view = new DataView(w.buffer, abs, n * 4)
    for (let i = 0; i < n; i++) sum += view.getFloat32(i * 4, true) * x[i]
  }
  return sum
}

function dotF16 (w: Uint8Array, off: number, x: Float32Array): number {
  let sum = 0
  for (let i = 0, p = off; i < x.length; i++, p += 2) sum += F16_TO_F32[w[p] | (w[p + 1] << 8)] * x[i]
  return sum
}

function dotBf16 (w: Uint8Array, off: number, x: Float32Array): number {
  let sum = 0
  for (let i = 0, p = off; i < x.length; i++, p += 2) sum += bf16ToF32(w[p] | (w[p + 1] << 8)) * x[i]
  return sum
}

// ggml_vec_dot_q8_0_q8_0: sumi * (d_w * d_x) per block
function dotQ8_0 (w: Uint8Array, off: number, x: PreparedQ8_0Activation): number {
  const { qs, d } = x
  let sum = 0
  for (let b = 0, ib = 0, p = off; b < x.cols; b += 32, ib++, p += 34) {
    let sumi = 0
    for (let j = 0; j < 32; j++) sumi += ((w[p + 2 + j] << 24) >> 24) * qs[b + j]
    sum += sumi * f(F16_TO_F32[w[p] | (w[p + 1] << 8)] * d[ib])
  }
  return sum
}

// ggml_vec_dot_q4_0_q8_0: nibble j (low) pairs with x[j], nibble j (high) with x[j + 16]; values nibble - 8
function dotQ4_0 (w: Uint8Array, off: number, x: PreparedQ8_0Activation): number {
  const { qs, d } = x
  let sum = 0
  for (let b = 0, ib = 0, p = off; b < x.cols; b += 32, ib++, p += 18) {
    let sumi = 0
    for (let j = 0; j < 16; j++) {
      const q = w[p + 2 + j]
      sumi += ((q & 0x0f) - 8) * qs[b + j] + ((q >> 4) - 8) * qs[b + j + 16]
    }
    sum += sumi * f(F16_TO_F32[w[p] | (w[p + 1] << 8)] * d[ib])
  }
  return sum
}

// ggml_vec_dot_q4_K_q8_K: d_w*d_x * sum_j scale_j * (q4 . q8)_j  -  dmin_w*d_x * sum_j min_j * bsum_j
function dotQ4K (w: Uint8Array, off: number, x: PreparedQ8KActivation): number {
  const { qs, d, bsums } = x
  let sum = 0
  for (let b = 0, ib = 0, p = off; b < x.cols; b += QK_K, ib++, p += 144) {
    let sumScaled = 0
    let sumMins = 0
    let q = p + 16
    for (let j = 0; j < 8; j += 2) {
      const sm1 = getScaleMinK4(j, w, p + 4)
      const sm2 = getScaleMinK4(j + 1, w, p + 4)
      const a = b + 32 * j
      let lo = 0
      let hi = 0
      for (let l = 0; l < 32; l++) {
        const byte = w[q + l]
        lo += (byte & 0xf) * qs[a + l]
        hi += (byte >> 4) * qs[a + 32 + l]
      }
      sumScaled += (sm1 & 0xff) * lo + (sm2 & 0xff) * hi
      const g = (b >> 4) + 2 * j // bsums of 16: two per 32-element sub-block
      sumMins += (sm1 >> 8) * (bsums[g] + bsums[g + 1]) + (sm2 >> 8) * (bsums[g + 2] + bsums[g + 3])
      q += 32
    }
    const dd = f(F16_TO_F32[w[p] | (w[p + 1] << 8)] * d[ib])
    const dmin = f(F16_TO_F32[w[p + 2] | (w[p + 3] << 8)] * d[ib])
    sum += dd * sumScaled - dmin * sumMins
  }
  return sum
}

// ggml_vec_dot_q6_K_q8_K: d_w*d_x * sum over 16-element groups of scale_g * (q6 - 32) . q8
function dotQ6K (w: Uint8Array, off: number, x: PreparedQ8KActivation): number {
  const { qs, d } = x
  let sum = 0
  for (let b = 0, ib = 0, p = off; b < x.cols; b += QK_K, ib++, p += 210) {
    let sumi = 0
    let ql = p
    let qh = p + 128
    let sc = p + 192
    let a = b
    for (let half = 0; half < 2; half++) {
      // 4 runs of 32 elements, each two groups of 16 with their own scale
      for (let g = 0; g < 2; g++) {
        let s1 = 0
        let s2 = 0
        let s3 = 0
        let s4 = 0
        for (let l = 16 * g; l < 16 * g + 16; l++) {
          const h = w[qh + l]
          s1 += (((w[ql + l] & 0xf) | ((h & 3) << 4)) - 32) * qs[a + l]
          s2 += (((w[ql + l + 32] & 0xf) | (((h >> 2) & 3) << 4)) - 32) * qs[a + l + 32]
          s3 += (((w[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32) * qs[a + l + 64]
          s4 += (((w[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32) * qs[a + l + 96]
        }
        sumi += ((w[sc + g] << 24) >> 24) * s1 + ((w[sc + g + 2] << 24) >> 24) * s2 +
          ((w[sc + g + 4] << 24) >> 24) * s3 + ((w[sc + g + 6] << 24) >> 24) * s4
      }
      a += 128
      ql += 64
      qh += 32
      sc += 8
    }
    sum += f(F16_TO_F32[w[p + 208] | (w[p + 209] << 8)] * d[ib]) * sumi
  }
  return sum
}

/**
 * Serialize a prepared q8_0 or q8_K activation to ggml's block bytes (block_q8_0: f16 d + 32 int8; block_q8_K:
 * f32 d + 256 int8 + 16 int16), e.g. to hand to a WASM kernel or to ggml itself.
 */
export function preparedActivationBytes (x: PreparedQ8_0Activation | PreparedQ8KActivation): Uint8Array {
  if (x.kind === 'q8_0') {
    const out = new Uint8Array((x.cols / 32) * 34)
    for (let ib = 0; ib < x.cols / 32; ib++) {
      const h = f32ToF16(x.d[ib])
      out[ib * 34] = h & 0xff
      out[ib * 34 + 1] = h >>> 8
      out.set(new Uint8Array(x.qs.buffer, x.qs.byteOffset + ib * 32, 32), ib * 34 + 2)
    }
    return out
  }
  const blockBytes = 4 + QK_K + 32
  const out = new Uint8Array((x.cols / QK_K) * blockBytes)
  const view = new DataView(out.buffer)
  for (let ib = 0; ib < x.cols / QK_K; ib++) {
    const p = ib * blockBytes
    view.setFloat32(p, x.d[ib], true)
    out.set(new Uint8Array(x.qs.buffer, x.qs.byteOffset + ib * QK_K, QK_K), p + 4)
    for (let g = 0; g < 16; g++) view.setInt16(p + 4 + QK_K + 2 * g, x.bsums[ib * 16 + g], true)
  }
  return out
}
