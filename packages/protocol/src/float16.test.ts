import { describe, expect, it } from 'vitest'
import {
  bf16BitsToF32, bf16ToFloat32, f16BitsToF32, f16ToFloat32, f32BitsToBf16, f32BitsToF16, float32ToBf16, float32ToF16,
  roundToBf16, roundToF16
} from './float16.js'

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)
const bitsOf = (x: number): number => { f32[0] = x; return u32[0] }
const valueOf = (bits: number): number => { u32[0] = bits; return f32[0] }

// Independent reference: the nearest of all finite positive f16 values (ties to even), by binary search.
const positiveF16: number[] = []
for (let h = 0; h < 0x7c00; h++) positiveF16.push(valueOf(f16BitsToF32(h)))
function referenceF16 (x: number): number {
  if (Number.isNaN(x)) return NaN
  const sign = x < 0 || Object.is(x, -0) ? -1 : 1
  const a = Math.abs(x)
  const max = positiveF16[0x7bff]
  const halfUlpAboveMax = max + 16 // 65520: ties to even round up to Inf
  if (a >= halfUlpAboveMax) return sign * Infinity
  let lo = 0
  let hi = positiveF16.length - 1
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1
    if (positiveF16[mid] <= a) lo = mid; else hi = mid
  }
  const dl = a - positiveF16[lo]
  const dh = positiveF16[hi] - a
  const pick = dl < dh ? lo : dh < dl ? hi : (lo % 2 === 0 ? lo : hi)
  return sign * positiveF16[a >= positiveF16[hi] ? hi : pick]
}

function referenceBf16 (x: number): number {
  const bits = bitsOf(x)
  const lo = valueOf((bits & 0xffff0000) >>> 0)
  const hi = valueOf(((bits & 0xffff0000) + 0x10000) >>> 0)
  const dl = Math.abs(x - lo)
  const dh = Math.abs(hi - x)
  if (dl < dh) return lo
  if (dh < dl) return hi
  return ((bits >>> 16) & 1) === 0 ? lo : hi
}

describe('f16', () => {
  it('decodes known bit patterns', () => {
    expect(valueOf(f16BitsToF32(0x3c00))).toBe(1)
    expect(valueOf(f16BitsToF32(0xc000))).toBe(-2)
    expect(valueOf(f16BitsToF32(0x7bff))).toBe(65504)
    expect(valueOf(f16BitsToF32(0x0001))).toBe(2 ** -24)
    expect(valueOf(f16BitsToF32(0x0400))).toBe(2 ** -14)
    expect(valueOf(f16BitsToF32(0x7c00))).toBe(Infinity)
    expect(valueOf(f16BitsToF32(0xfc00))).toBe(-Infinity)
    expect(Object.is(valueOf(f16BitsToF32(0x8000)), -0)).toBe(true)
    expect(Number.isNaN(valueOf(f16BitsToF32(0x7e00)))).toBe(true)
  })

  it('encodes edge cases with round to nearest even', () => {
    expect(f32BitsToF16(bitsOf(1))).toBe(0x3c00)
    expect(f32BitsToF16(bitsOf(65504))).toBe(0x7bff)
    expect(f32BitsToF16(bitsOf(65519))).toBe(0x7bff)
    expect(f32BitsToF16(bitsOf(65520))).toBe(0x7c00) // tie, 0x7bff is odd -> Inf
    expect(f32BitsToF16(bitsOf(1e10))).toBe(0x7c00)
    expect(f32BitsToF16(bitsOf(-1e10))).toBe(0xfc00)
    expect(f32BitsToF16(bitsOf(2 ** -24))).toBe(0x0001)
    expect(f32BitsToF16(bitsOf(2 ** -25))).toBe(0x0000) // tie -> even (0)
    expect(f32BitsToF16(bitsOf(3 * 2 ** -26))).toBe(0x0001)
    expect(f32BitsToF16(bitsOf(1 + 2 ** -11))).toBe(0x3c00) // tie -> even
    expect(f32BitsToF16(bitsOf(1 + 3 * 2 ** -11))).toBe(0x3c02) // tie -> even (up)
    expect(f32BitsToF16(bitsOf(-0))).toBe(0x8000)
    expect(f32BitsToF16(bitsOf(2 ** -14 - 2 ** -25))).toBe(0x0400) // rounds up into the smallest normal
  })

  it('keeps NaN a NaN with its sign', () => {
    const h = f32BitsToF16(0x7fc00001)
    expect(h & 0x7c00).toBe(0x7c00)
    expect(h & 0x3ff).not.toBe(0)
    const signalling = f32BitsToF16(0xff800001) // mantissa bit only in the low 13 bits
    expect(signalling & 0x8000).toBe(0x8000)
    expect(signalling & 0x3ff).not.toBe(0)
    expect(Number.isNaN(roundToF16(NaN))).toBe(true)
  })

  it('round-trips every f16 bit pattern exactly', () => {
    for (let h = 0; h < 65536; h++) {
      const back = f32BitsToF16(f16BitsToF32(h))
      if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) {
        expect((back & 0x7c00) === 0x7c00 && (back & 0x3ff) !== 0).toBe(true)
      } else if (back !== h) {
        expect(back).toBe(h)
      }
    }
  })

  it('matches the nearest-value reference on random f32 inputs', () => {
    let seed = 12345
    const rand = (): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed }
    const input = new Float32Array(20000)
    for (let i = 0; i < input.length; i++) {
      // exponents concentrated on the f16 range, including subnormals and overflow
      const exp = 127 - 28 + (rand() % 46)
      u32[0] = ((rand() & 1) << 31 | exp << 23 | (rand() & 0x7fffff)) >>> 0
      input[i] = f32[0]
    }
    const out = f16ToFloat32(float32ToF16(input))
    for (let i = 0; i < input.length; i++) {
      const want = referenceF16(input[i])
      if (!Object.is(out[i], want)) expect([input[i], out[i]]).toEqual([input[i], want])
    }
  })
})

describe('bf16', () => {
  it('encodes edge cases', () => {
    expect(f32BitsToBf16(bitsOf(1))).toBe(0x3f80)
    expect(f32BitsToBf16(0x3f808000)).toBe(0x3f80) // tie -> even
    expect(f32BitsToBf16(0x3f818000)).toBe(0x3f82) // tie -> even (up)
    expect(f32BitsToBf16(0x3f808001)).toBe(0x3f81)
    expect(f32BitsToBf16(0x7f7fffff)).toBe(0x7f80) // max f32 rounds to Inf
    expect(f32BitsToBf16(bitsOf(-Infinity))).toBe(0xff80)
    const nan = f32BitsToBf16(0x7f800001) // NaN whose payload is only in the dropped bits
    expect(Number.isNaN(valueOf(bf16BitsToF32(nan)))).toBe(true)
    expect(Number.isNaN(roundToBf16(NaN))).toBe(true)
  })

  it('matches the nearest-value reference on random finite f32 inputs', () => {
    let seed = 777
    const rand = (): number => { seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0; return seed }
    const input = new Float32Array(20000)
    for (let i = 0; i < input.length; i++) {
      do { u32[0] = rand() } while (!Number.isFinite(f32[0]) || (u32[0] & 0x7f800000) === 0x7f000000)
      input[i] = f32[0]
    }
    const out = bf16ToFloat32(float32ToBf16(input))
    for (let i = 0; i < input.length; i++) {
      const want = referenceBf16(input[i])
      if (!Object.is(out[i], want)) expect([input[i], out[i]]).toEqual([input[i], want])
    }
  })
})
