// IEEE half (f16) and bfloat16 conversions, bit-exact: round to nearest, ties to even; NaN stays NaN (quiet, sign
// kept); overflow rounds to Inf; f16 subnormals are produced and read.

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

/** f32 bits -> f16 bits, round to nearest even. */
export function f32BitsToF16 (x: number): number {
  const sign = (x >>> 16) & 0x8000
  const exp = (x >>> 23) & 0xff
  const mant = x & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0)
  const halfExp = exp - 112 // exp - 127 + 15
  if (halfExp >= 0x1f) return sign | 0x7c00
  if (halfExp <= 0) {
    // f16 subnormal (or zero): value = m * 2^(exp-150), subnormal unit 2^-24 -> m >> (14 - halfExp)
    if (halfExp < -10) return sign
    const m = mant | 0x800000
    const shift = 14 - halfExp
    let h = m >>> shift
    const rem = m & ((1 << shift) - 1)
    const half = 1 << (shift - 1)
    if (rem > half || (rem === half && (h & 1) === 1)) h++
    return sign | h // a carry into bit 10 is the smallest normal, encoded correctly
  }
  let h = mant >>> 13
  const rem = mant & 0x1fff
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++
  return sign | ((halfExp << 10) + h) // a carry rolls into the exponent, up to Inf
}

/** f16 bits -> f32 bits (exact). */
export function f16BitsToF32 (h: number): number {
  const sign = (h & 0x8000) << 16
  const exp = (h >>> 10) & 0x1f
  const mant = h & 0x3ff
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0
  if (mant === 0) return sign >>> 0
  // subnormal: mant * 2^-24, exactly representable in f32
  f32[0] = mant * 2 ** -24
  return (u32[0] | sign) >>> 0
}

/** f32 bits -> bf16 bits, round to nearest even. */
export function f32BitsToBf16 (x: number): number {
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff // NaN: keep sign, force quiet bit
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff
}

/** bf16 bits -> f32 bits (exact). */
export function bf16BitsToF32 (b: number): number {
  return (b << 16) >>> 0
}

let f16Table: Float32Array | undefined

/** Float32 value of every f16 bit pattern (256 KiB, built on first use). */
function f16ToF32Table (): Float32Array {
  if (f16Table === undefined) {
    const bits = new Uint32Array(65536)
    for (let h = 0; h < 65536; h++) bits[h] = f16BitsToF32(h)
    f16Table = new Float32Array(bits.buffer)
  }
  return f16Table
}

/** Converts f32 values to f16 bit patterns. */
export function float32ToF16 (src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length)
  for (let i = 0; i < bits.length; i++) dst[i] = f32BitsToF16(bits[i])
  return dst
}

/** Converts f16 bit patterns to f32 values. */
export function f16ToFloat32 (src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  const table = f16ToF32Table()
  for (let i = 0; i < src.length; i++) dst[i] = table[src[i]]
  return dst
}

/** Converts f32 values to bf16 bit patterns. */
export function float32ToBf16 (src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length)
  for (let i = 0; i < bits.length; i++) dst[i] = f32BitsToBf16(bits[i])
  return dst
}

/** Converts bf16 bit patterns to f32 values. */
export function bf16ToFloat32 (src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length)
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16
  return dst
}

/** Rounds one number through f16 and back (useful for tests and tolerances). */
export function roundToF16 (value: number): number {
  f32[0] = value
  u32[0] = f16BitsToF32(f32BitsToF16(u32[0]))
  return f32[0]
}

/** Rounds one number through bf16 and back. */
export function roundToBf16 (value: number): number {
  f32[0] = value
  u32[0] = bf16BitsToF32(f32BitsToBf16(u32[0]))
  return f32[0]
}
