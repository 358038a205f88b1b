/**
 * Scalar conversions between f32 and the 16-bit float formats, bit-exact with ggml:
 * f16 rounding is round-to-nearest-even like F16C's vcvtps2ph (what GGML_CPU_FP32_TO_FP16 compiles to on x86),
 * bf16 rounding is ggml_compute_fp32_to_bf16 (nearest even, NaN forced quiet).
 */

const scratchF32 = new Float32Array(1)
const scratchU32 = new Uint32Array(scratchF32.buffer)

function buildF16Table (): Uint32Array {
  const bits = new Uint32Array(65536)
  const values = new Float32Array(bits.buffer)
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1
    const exp = (h >> 10) & 0x1f
    const mant = h & 0x3ff
    if (exp === 0) values[h] = sign * mant * 2 ** -24
    else if (exp < 31) values[h] = sign * (1024 + mant) * 2 ** (exp - 25)
    else if (mant === 0) values[h] = sign * Infinity
    // NaN: sign and payload kept (mantissa shifted up by 13 bits) and made quiet, as F16C and ggml's software
    // path do; written as bits because a NaN stored through a JS number may lose its payload
    else bits[h] = (((h & 0x8000) << 16) | 0x7fc00000 | (mant << 13)) >>> 0
  }
  return bits
}

/** f16 bits -> f32 bit pattern for all 65536 patterns (NaN payloads exact). */
export const F16_TO_F32_BITS: Uint32Array = buildF16Table()

/** f16 bits -> f32 value for all 65536 patterns. Index with the raw little-endian u16. */
export const F16_TO_F32: Float32Array = new Float32Array(F16_TO_F32_BITS.buffer)

/** f16 bits -> number (exact). */
export function f16ToF32 (h: number): number {
  return F16_TO_F32[h & 0xffff]
}

/** number -> f16 bits, rounding the f32 value of `x` to nearest even (subnormals, overflow to inf, quiet NaN). */
export function f32ToF16 (x: number): number {
  scratchF32[0] = x
  const u = scratchU32[0]
  const sign = (u >>> 16) & 0x8000
  const exp = (u >>> 23) & 0xff
  const mant = u & 0x7fffff
  if (exp === 0xff) {
    // inf stays inf; NaN keeps its top payload bits and is made quiet, as vcvtps2ph does
    return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13)
  }
  const e = exp - 112 // f16 biased exponent
  if (e >= 31) return sign | 0x7c00
  if (e <= 0) {
    // f16 subnormal (or zero): value / 2^-24 = mant24 >> (14 - e), rounded to nearest even
    if (e < -10) return sign
    const m = mant | 0x800000
    const shift = 14 - e
    let q = m >>> shift
    const rem = m & ((1 << shift) - 1)
    const half = 1 << (shift - 1)
    if (rem > half || (rem === half && (q & 1) !== 0)) q++
    return sign | q
  }
  let h = (e << 10) | (mant >>> 13)
  const rem = mant & 0x1fff
  // a carry out of the mantissa bumps the exponent, up to inf: exactly the IEEE result
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++
  return sign | h
}

/** bf16 bits -> number (exact). */
export function bf16ToF32 (b: number): number {
  scratchU32[0] = (b & 0xffff) << 16
  return scratchF32[0]
}

/** number -> bf16 bits as ggml_compute_fp32_to_bf16: nearest even on the f32 bits, NaN -> quiet NaN (top bits kept). */
export function f32ToBf16 (x: number): number {
  scratchF32[0] = x
  const u = scratchU32[0]
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 64) & 0xffff
  return ((u + (0x7fff + ((u >>> 16) & 1))) >>> 16) & 0xffff
}

/** Round a number to the nearest f16 value, returned as a number (the value ggml's f16 activation would hold). */
export function roundToF16 (x: number): number {
  return F16_TO_F32[f32ToF16(x)]
}

/** Round a number to the nearest bf16 value (ggml's rounding), returned as a number. */
export function roundToBf16 (x: number): number {
  return bf16ToF32(f32ToBf16(x))
}
