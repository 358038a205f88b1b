import type { DType } from '../types.js'
import { QuantLayoutError } from './errors.js'
import { dtypeInfo, rowBytes, QK_K, Q8_K_BLOCK_BYTES } from './dtypes.js'
import * as half from './half.js'
import * as ops from './float-ops.js'
import { quantizeRowQ4K, quantizeRowQ6K } from './k-quants.js'

// Module-local bindings for the hot loops (transpilers such as vitest's turn imported names into property reads).
const { f32ToBf16, f32ToF16, F16_TO_F32 } = half
const { cmax, nearestInt, roundEven, roundf } = ops
const f = Math.fround

/**
 * Quantize one row of `cols` f32 values from `src[srcOffset..]` into `dst[dstOffset..]` in `dtype`, byte-identical
 * to ggml's quantize_row_*_ref (what llama.cpp's quantizer does without an importance matrix).
 */
export function quantizeRow (dtype: DType, src: Float32Array, srcOffset: number, cols: number,
  dst: Uint8Array, dstOffset: number): void {
  const nbytes = rowBytes(dtype, cols)
  if (srcOffset < 0 || srcOffset + cols > src.length) {
    throw new QuantLayoutError(`source of ${src.length} has no ${cols} values at ${srcOffset}`)
  }
  if (dstOffset < 0 || dstOffset + nbytes > dst.length) {
    throw new QuantLayoutError(`${dtype} row of ${cols} needs ${nbytes} bytes at ${dstOffset}, buffer has ${dst.length}`)
  }
  switch (dtype) {
    case 'f32': quantizeF32(src, srcOffset, cols, dst, dstOffset); break
    case 'f16':
      for (let i = 0, p = dstOffset; i < cols; i++, p += 2) writeU16(dst, p, f32ToF16(src[srcOffset + i]))
      break
    case 'bf16':
      for (let i = 0, p = dstOffset; i < cols; i++, p += 2) writeU16(dst, p, f32ToBf16(src[srcOffset + i]))
      break
    case 'q8_0': quantizeRowQ8_0(src, srcOffset, cols, dst, dstOffset, 'ref'); break
    case 'q4_0': quantizeRowQ4_0(src, srcOffset, cols, dst, dstOffset); break
    case 'q4_K': quantizeRowQ4K(src, srcOffset, cols, dst, dstOffset); break
    case 'q6_K': quantizeRowQ6K(src, srcOffset, cols, dst, dstOffset); break
    default: dtypeInfo(dtype) // throws for an unknown dtype
  }
}

/** Quantize a whole f32 tensor of torch-order `shape` (rows along the last dimension) to `dtype`. */
export function quantize (dtype: DType, src: Float32Array, shape: readonly number[]): Uint8Array {
  const cols = shape.length === 0 ? 1 : shape[shape.length - 1]
  let rows = 1
  for (let i = 0; i < shape.length - 1; i++) rows *= shape[i]
  if (src.length !== rows * cols) {
    throw new QuantLayoutError(`shape [${shape.join(', ')}] has ${rows * cols} elements, source has ${src.length}`)
  }
  const bytesPerRow = rowBytes(dtype, cols)
  const out = new Uint8Array(rows * bytesPerRow)
  for (let r = 0; r < rows; r++) quantizeRow(dtype, src, r * cols, cols, out, r * bytesPerRow)
  return out
}

function writeU16 (dst: Uint8Array, p: number, v: number): void {
  dst[p] = v & 0xff
  dst[p + 1] = v >>> 8
}

function quantizeF32 (src: Float32Array, off: number, n: number, dst: Uint8Array, p: number): void {
  const abs = dst.byteOffset + p
  if (abs % 4 === 0) {
    new Float32Array(dst.buffer, abs, n).set(src.subarray(off, off + n))
    return
  }
  const view = new DataView(dst.buffer, abs, n * 4)
  for (let i = 0; i < n; i++) view.setFloat32(i * 4, src[off + i], true)
}

/**
 * How to round activations to q8_0. 'ref' is quantize_row_q8_0_ref (id = 1/d, roundf: halves away from zero),
 * used by ggml on generic/ARM builds and by the model quantizer. 'avx' is the x86 AVX/AVX2 path of ggml-cpu's
 * quantize_row_q8_0 (id = 127/amax, round half to even), which llama.cpp uses for activations on x86.
 */
export type Q8_0Rounding = 'ref' | 'avx'

/**
 * q8_0 blocks (f16 d, 32 int8) of `n` values: d = amax/127 stored as f16, q = round(x * id).
 * Also usable for activations via `rounding`.
 */
export function quantizeRowQ8_0 (src: Float32Array, off: number, n: number, dst: Uint8Array, p: number,
  rounding: Q8_0Rounding = 'ref'): void {
  if (n % 32 !== 0) throw new QuantLayoutError(`q8_0 rows need a multiple of 32 elements, got ${n}`)
  for (let b = 0; b < n; b += 32, p += 34) {
    const x = off + b
    let amax = 0
    for (let j = 0; j < 32; j++) amax = cmax(amax, Math.abs(src[x + j]))
    const d = f(amax / 127)
    writeU16(dst, p, f32ToF16(d))
    if (rounding === 'ref') {
      const id = d !== 0 ? f(1 / d) : 0
      for (let j = 0; j < 32; j++) dst[p + 2 + j] = roundf(f(src[x + j] * id))
    } else {
      const id = amax !== 0 ? f(127 / amax) : 0
      for (let j = 0; j < 32; j++) dst[p + 2 + j] = roundEven(f(src[x + j] * id))
    }
  }
}

/** q4_0 blocks (f16 d, 16 bytes of nibbles): d = max / -8 with max the signed value of largest magnitude. */
function quantizeRowQ4_0 (src: Float32Array, off: number, n: number, dst: Uint8Array, p: number): void {
  for (let b = 0; b < n; b += 32, p += 18) {
    const x = off + b
    let amax = 0
    let max = 0
    for (let j = 0; j < 32; j++) {
      const v = src[x + j]
      if (amax < Math.abs(v)) {
        amax = Math.abs(v)
        max = v
      }
    }
    const d = f(max / -8)
    const id = d !== 0 ? f(1 / d) : 0
    writeU16(dst, p, f32ToF16(d))
    for (let j = 0; j < 16; j++) {
      const x0 = f(src[x + j] * id)
      const x1 = f(src[x + 16 + j] * id)
      // (int8_t)(x + 8.5f) truncates toward zero, then MIN(15, .)
      const xi0 = Math.min(15, Math.trunc(f(x0 + 8.5)))
      const xi1 = Math.min(15, Math.trunc(f(x1 + 8.5)))
      dst[p + 2 + j] = xi0 | (xi1 << 4)
    }
  }
}

/**
 * ggml's quantize_row_q8_K_ref into block_q8_K bytes (f32 d, int8 qs[256], int16 bsums[16], little-endian):
 * iscale = -127/max with max the signed value of largest magnitude, q = min(127, nearest_int(iscale * x)),
 * d = 1/iscale, bsums = sums of 16 consecutive quants. An all-zero block gets d = 0 and zero quants and sums.
 */
export function quantizeRowQ8K (src: Float32Array, off: number, n: number, dst: Uint8Array, p: number): void {
  if (n % QK_K !== 0) throw new QuantLayoutError(`q8_K rows need a multiple of ${QK_K} elements, got ${n}`)
  if (p + (n / QK_K) * Q8_K_BLOCK_BYTES > dst.length) throw new QuantLayoutError('q8_K destination too short')
  const view = new DataView(dst.buffer, dst.byteOffset, dst.byteLength)
  for (let b = 0; b < n; b += QK_K, p += Q8_K_BLOCK_BYTES) {
    const x = off + b
    let max = 0
    let amax = 0
    for (let j = 0; j < QK_K; j++) {
      const ax = Math.abs(src[x + j])
      if (ax > amax) {
        amax = ax
        max = src[x + j]
      }
    }
    if (amax === 0) {
      dst.fill(0, p, p + Q8_K_BLOCK_BYTES)
      continue
    }
    const iscale = f(-127 / max)
    for (let j = 0; j < QK_K; j++) dst[p + 4 + j] = Math.min(127, nearestInt(f(iscale * src[x + j])))
    for (let g = 0; g < QK_K / 16; g++) {
      let sum = 0
      for (let i = 0; i < 16; i++) sum += (dst[p + 4 + g * 16 + i] << 24) >> 24
      view.setInt16(p + 4 + QK_K + 2 * g, sum, true)
    }
    view.setFloat32(p, f(1 / iscale), true)
  }
}

/** f16 value of the little-endian f16 at `src[p]`. */
export function readF16 (src: Uint8Array, p: number): number {
  return F16_TO_F32[src[p] | (src[p + 1] << 8)]
}
