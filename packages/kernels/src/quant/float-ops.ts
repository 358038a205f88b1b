/** Helpers that reproduce C float (binary32) arithmetic step by step. */

/** Round to f32: applied after every C float operation (each is then correctly rounded, like SSE scalar math). */
export const f = Math.fround

const scratchF32 = new Float32Array(1)
const scratchI32 = new Int32Array(scratchF32.buffer)

/**
 * ggml's nearest_int: adds 1.5 * 2^23 in f32 and reads the low mantissa bits, i.e. round-half-even for
 * |fval| <= 2^22 - 1, and the same bit pattern as C outside that range. `fval` must already be an f32 value.
 */
export function nearestInt (fval: number): number {
  scratchF32[0] = fval + 12582912
  return (scratchI32[0] & 0x007fffff) - 0x00400000
}

/** C roundf: nearest, halves away from zero. `x` must be an f32 value. */
export function roundf (x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5)
}

/** Round to nearest, halves to even (x86 _mm256_round_ps with _MM_ROUND_NEAREST, or cvtps2dq). */
export function roundEven (x: number): number {
  const r = Math.round(x) // halves toward +inf
  return r - x === 0.5 && (r & 1) !== 0 ? r - 1 : r
}

/** C's MAX(a, b) macro: `a > b ? a : b` (the NaN behaviour matters for bit-exactness). */
export function cmax (a: number, b: number): number {
  return a > b ? a : b
}
