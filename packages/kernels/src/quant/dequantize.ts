import type { DType, Tensor } from '../types.js'
import { QuantLayoutError } from './errors.js'
import { dtypeInfo, rowBytes, QK_K } from './dtypes.js'
import * as half from './half.js'

// Module-local bindings for the hot loops (transpilers such as vitest's turn imported names into property reads).
const F16_TO_F32 = half.F16_TO_F32
const F16_TO_F32_BITS = half.F16_TO_F32_BITS

/**
 * Dequantize one row of `cols` elements stored in `dtype` at `src[srcByteOffset..]` into `out[outOffset..]`,
 * exactly as ggml's dequantize_row_* / to_float functions (every product is exact or rounded once to f32, as in C).
 */
export function dequantizeRow (dtype: DType, src: Uint8Array, srcByteOffset: number, cols: number,
  out: Float32Array, outOffset: number): void {
  const nbytes = rowBytes(dtype, cols)
  if (srcByteOffset < 0 || srcByteOffset + nbytes > src.length) {
    throw new QuantLayoutError(`${dtype} row of ${cols} needs ${nbytes} bytes at ${srcByteOffset}, buffer has ${src.length}`)
  }
  if (outOffset < 0 || outOffset + cols > out.length) {
    throw new QuantLayoutError(`output of ${out.length} cannot hold ${cols} values at ${outOffset}`)
  }
  switch (dtype) {
    case 'f32': dequantizeF32(src, srcByteOffset, cols, out, outOffset); break
    case 'f16': dequantizeF16(src, srcByteOffset, cols, out, outOffset); break
    case 'bf16': dequantizeBf16(src, srcByteOffset, cols, out, outOffset); break
    case 'q8_0': dequantizeQ8_0(src, srcByteOffset, cols, out, outOffset); break
    case 'q4_0': dequantizeQ4_0(src, srcByteOffset, cols, out, outOffset); break
    case 'q4_K': dequantizeQ4K(src, srcByteOffset, cols, out, outOffset); break
    case 'q6_K': dequantizeQ6K(src, srcByteOffset, cols, out, outOffset); break
    default: dtypeInfo(dtype) // throws for an unknown dtype
  }
}

/** Dequantize a whole tensor (all rows) to f32. */
export function dequantize (tensor: Tensor): Float32Array {
  const { dtype, shape, data } = tensor
  const cols = shape.length === 0 ? 1 : shape[shape.length - 1]
  let rows = 1
  for (let i = 0; i < shape.length - 1; i++) rows *= shape[i]
  const bytesPerRow = rowBytes(dtype, cols)
  if (data.length < rows * bytesPerRow) {
    throw new QuantLayoutError(`tensor '${tensor.name}' [${shape.join(', ')}] ${dtype} needs ${rows * bytesPerRow} bytes, has ${data.length}`)
  }
  const out = new Float32Array(rows * cols)
  for (let r = 0; r < rows; r++) dequantizeRow(dtype, data, r * bytesPerRow, cols, out, r * cols)
  return out
}

function dequantizeF32 (src: Uint8Array, off: number, n: number, out: Float32Array, o: number): void {
  const abs = src.byteOffset + off
  if (abs % 4 === 0) {
    out.set(new Float32Array(src.buffer, abs, n), o)
    return
  }
  const view = new DataView(src.buffer, abs, n * 4)
  for (let i = 0; i < n; i++) out[o + i] = view.getFloat32(i * 4, true)
}

// f16 and bf16 are widened as bit patterns so NaN payloads survive exactly, as in ggml
function dequantizeF16 (src: Uint8Array, off: number, n: number, out: Float32Array, o: number): void {
  const outBits = new Uint32Array(out.buffer, out.byteOffset + 4 * o, n)
  for (let i = 0, p = off; i < n; i++, p += 2) outBits[i] = F16_TO_F32_BITS[src[p] | (src[p + 1] << 8)]
}

function dequantizeBf16 (src: Uint8Array, off: number, n: number, out: Float32Array, o: number): void {
  const outBits = new Uint32Array(out.buffer, out.byteOffset + 4 * o, n)
  for (let i = 0, p = off; i < n; i++, p += 2) outBits[i] = (src[p] << 16) | (src[p + 1] << 24)
}

// block_q8_0: f16 d, int8 qs[32]
function dequantizeQ8_0 (src: Uint8Array, off: number, n: number, out: Float32Array, o: number): void {
  for (let b = 0, p = off; b < n; b += 32, p += 34) {
    const d = F16_TO_F32[src[p] | (src[p + 1] << 8)]
    for (let j = 0; j < 32; j++) out[o + b + j] = ((src[p + 2 + j] << 24) >> 24) * d
  }
}

// block_q4_0: f16 d, qs[16]: low nibble -> element j, high nibble -> element j + 16; value (nibble - 8) * d
function dequantizeQ4_0 (src: Uint8Array, off: number, n: number, out: Float32Array, o: number): void {
  for (let b = 0, p = off; b < n; b += 32, p += 18) {
    const d = F16_TO_F32[src[p] | (src[p + 1] << 8)]
    for (let j = 0; j < 16; j++) {
      const q = src[p + 2 + j]
      out[o + b + j] = ((q & 0x0f) - 8) * d
      out[o + b + j + 16] = ((q >> 4) - 8) * d
    }
  }
}

/**
 * ggml's get_scale_min_k4: the j-th (0..7) 6-bit scale and min of a q4_K/q5_K block's 12 packed scale bytes
 * starting at `q[p]`. Returns scale | (min << 8).
 */
export function getScaleMinK4 (j: number, q: Uint8Array, p: number): number {
  let sc: number, m: number
  if (j < 4) {
    sc = q[p + j] & 63
    m = q[p + j + 4] & 63
  } else {
    sc = (q[p + j + 4] & 0xf) | ((q[p + j - 4] >> 6) << 4)
    m = (q[p + j + 4] >> 4) | ((q[p + j] >> 6) << 4)
  }
  return sc | (m << 8)
}

// block_q4_K: f16 d, f16 dmin, scales[12] (8 x 6-bit scale + 6-bit min), qs[128];
// each 64 elements: 32 low nibbles (sub-block 2k) then 32 high nibbles (sub-block 2k+1) of the same 32 bytes
function dequantizeQ4K (src: Uint8Array, off: number, n: number, out: Float32Array, o: number): void {
  for (let b = 0, p = off; b < n; b += QK_K, p += 144) {
    const d = F16_TO_F32[src[p] | (src[p + 1] << 8)]
    const dmin = F16_TO_F32[src[p + 2] | (src[p + 3] << 8)]
    const scales = p + 4
    let q = p + 16
    let y = o + b
    for (let is = 0; is < 8; is += 2) {
      const sm1 = getScaleMinK4(is, src, scales)
      const sm2 = getScaleMinK4(is + 1, src, scales)
      const d1 = d * (sm1 & 0xff) // f16 * 6-bit: exact in f32
      const m1 = dmin * (sm1 >> 8)
      const d2 = d * (sm2 & 0xff)
      const m2 = dmin * (sm2 >> 8)
      for (let l = 0; l < 32; l++) out[y + l] = d1 * (src[q + l] & 0xf) - m1
      for (let l = 0; l < 32; l++) out[y + 32 + l] = d2 * (src[q + l] >> 4) - m2
      q += 32
      y += 64
    }
  }
}

// block_q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], f16 d; value d * scale * (q6 - 32)
function dequantizeQ6K (src: Uint8Array, off: number, n: number, out: Float32Array, o: number): void {
  for (let b = 0, p = off; b < n; b += QK_K, p += 210) {
    const d = F16_TO_F32[src[p + 208] | (src[p + 209] << 8)]
    let ql = p
    let qh = p + 128
    let sc = p + 192
    let y = o + b
    for (let half = 0; half < 2; half++) {
      for (let l = 0; l < 32; l++) {
        const is = l >> 4
        const h = src[qh + l]
        const q1 = ((src[ql + l] & 0xf) | ((h & 3) << 4)) - 32
        const q2 = ((src[ql + l + 32] & 0xf) | (((h >> 2) & 3) << 4)) - 32
        const q3 = ((src[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32
        const q4 = ((src[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32
        // (d * sc) is exact in f32; the product with q is rounded once on store, as in C
        out[y + l] = d * ((src[sc + is] << 24) >> 24) * q1
        out[y + l + 32] = d * ((src[sc + is + 2] << 24) >> 24) * q2
        out[y + l + 64] = d * ((src[sc + is + 4] << 24) >> 24) * q3
        out[y + l + 96] = d * ((src[sc + is + 6] << 24) >> 24) * q4
      }
      y += 128
      ql += 64
      qh += 32
      sc += 8
    }
  }
}
