import { describe, expect, it } from 'vitest'
import {
  DTYPE_INFO, DTYPES, QuantLayoutError, UnsupportedDTypeError, Q8_K_BLOCK_BYTES, bf16ToF32, dequantize,
  dequantizeRow, dotRow, f16ToF32, f32ToBf16, f32ToF16, ggmlTypeToDType, prepareActivation, quantize,
  quantizeRow, quantizeRowQ8K, rowBytes, tensorBytes
} from './index.js'
import type { PreparedActivation } from './index.js'

function rng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function gaussian (n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed)
  return new Float32Array(n).map(() => scale * Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r()))
}

function fromBits (u: number): number {
  return new Float32Array(new Uint32Array([u]).buffer)[0]
}

describe('dtype table', () => {
  it('has ggml type numbers and block geometry', () => {
    expect(DTYPE_INFO.q4_K).toEqual({ ggmlType: 12, blockSize: 256, blockBytes: 144 })
    expect(DTYPE_INFO.q6_K).toEqual({ ggmlType: 14, blockSize: 256, blockBytes: 210 })
    expect(DTYPE_INFO.q8_0).toEqual({ ggmlType: 8, blockSize: 32, blockBytes: 34 })
    for (const d of DTYPES) expect(ggmlTypeToDType(DTYPE_INFO[d].ggmlType)).toBe(d)
    expect(ggmlTypeToDType(30)).toBe('bf16')
  })

  it('rejects unsupported ggml types with their name', () => {
    expect(() => ggmlTypeToDType(3)).toThrow(UnsupportedDTypeError)
    expect(() => ggmlTypeToDType(13)).toThrow(/Q5_K/)
    expect(() => ggmlTypeToDType(99)).toThrow(/unsupported ggml type 99/)
  })

  it('computes row and tensor sizes and rejects partial blocks', () => {
    expect(rowBytes('f32', 3)).toBe(12)
    expect(rowBytes('bf16', 5)).toBe(10)
    expect(rowBytes('q4_0', 64)).toBe(36)
    expect(rowBytes('q6_K', 512)).toBe(420)
    expect(tensorBytes('q8_0', [3, 4, 64])).toBe(12 * 68)
    expect(tensorBytes('f16', [7])).toBe(14)
    expect(() => rowBytes('q4_K', 128)).toThrow(QuantLayoutError)
    expect(() => tensorBytes('q8_0', [2, 33])).toThrow(/multiple of 32/)
  })
})

describe('f16', () => {
  it('converts known values with round-to-nearest-even', () => {
    expect(f32ToF16(1)).toBe(0x3c00)
    expect(f32ToF16(-2)).toBe(0xc000)
    expect(f32ToF16(-0)).toBe(0x8000)
    expect(f32ToF16(65504)).toBe(0x7bff)
    expect(f32ToF16(65519)).toBe(0x7bff) // below the midpoint to 65536
    expect(f32ToF16(65520)).toBe(0x7c00) // midpoint, 0x7bff is odd: rounds to inf
    expect(f32ToF16(1e6)).toBe(0x7c00)
    expect(f32ToF16(-Infinity)).toBe(0xfc00)
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00) // tie -> even
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02) // tie -> even (up)
    expect(f32ToF16(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01) // above the tie
  })

  it('handles subnormals and underflow', () => {
    expect(f32ToF16(2 ** -24)).toBe(0x0001)
    expect(f32ToF16(2 ** -25)).toBe(0x0000) // tie between 0 and the smallest subnormal -> 0
    expect(f32ToF16(1.5 * 2 ** -25)).toBe(0x0001)
    expect(f32ToF16(3 * 2 ** -25)).toBe(0x0002) // 1.5 ulp: tie -> even
    expect(f32ToF16(5 * 2 ** -25)).toBe(0x0002) // 2.5 ulp: tie -> even
    expect(f32ToF16(-(2 ** -30))).toBe(0x8000)
    expect(f32ToF16(2 ** -14 - 2 ** -25)).toBe(0x0400) // rounds up into the smallest normal
    expect(f16ToF32(0x0001)).toBe(2 ** -24)
    expect(f16ToF32(0x03ff)).toBe(1023 * 2 ** -24)
  })

  it('keeps NaN a NaN (quiet) and round-trips every non-NaN pattern', () => {
    expect(f32ToF16(NaN) & 0x7e00).toBe(0x7e00)
    expect(f32ToF16(fromBits(0x7f800001))).toBe(0x7e00) // signalling NaN made quiet
    expect(f32ToF16(fromBits(0xffc02000))).toBe(0xfe01) // sign and top payload bits kept
    expect(Number.isNaN(f16ToF32(0x7c01))).toBe(true)
    const mismatches: number[] = []
    for (let h = 0; h < 65536; h++) {
      if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) continue
      if (f32ToF16(f16ToF32(h)) !== h) mismatches.push(h)
    }
    expect(mismatches).toEqual([])
  })
})

describe('bf16', () => {
  it('rounds to nearest even on the f32 bits, as ggml_compute_fp32_to_bf16', () => {
    expect(f32ToBf16(1)).toBe(0x3f80)
    expect(f32ToBf16(fromBits(0x3f808000))).toBe(0x3f80) // tie, even stays
    expect(f32ToBf16(fromBits(0x3f818000))).toBe(0x3f82) // tie, odd rounds up
    expect(f32ToBf16(fromBits(0x3f808001))).toBe(0x3f81)
    expect(f32ToBf16(fromBits(0x7f7fffff))).toBe(0x7f80) // max f32 rounds to inf
    expect(f32ToBf16(fromBits(0x00008000))).toBe(0x0000) // subnormal tie -> even
    expect(f32ToBf16(-Infinity)).toBe(0xff80)
    expect(f32ToBf16(fromBits(0x7f800001))).toBe(0x7fc0) // NaN forced quiet: (u >> 16) | 64
    expect(f32ToBf16(fromBits(0xff812345))).toBe(0xffc1)
    expect(bf16ToF32(0x4049)).toBe(3.140625)
    expect(bf16ToF32(0x8000)).toBe(-0)
  })
})

describe('q8_0 and q4_0 blocks (hand-computed)', () => {
  it('q8_0: d = amax/127, roundf halves away from zero', () => {
    const x = new Float32Array(32)
    x.set([-127, 0.5, -0.5, 1.5, 2.5, -2.5, 126.5, 3.49])
    const bytes = quantize('q8_0', x, [32])
    expect(bytes.length).toBe(34)
    expect(bytes[0] | (bytes[1] << 8)).toBe(0x3c00) // d = 1
    const qs = new Int8Array(bytes.buffer, 2, 32)
    expect(Array.from(qs.subarray(0, 9))).toEqual([-127, 1, -1, 2, 3, -3, 127, 3, 0])
    const back = new Float32Array(32)
    dequantizeRow('q8_0', bytes, 0, 32, back, 0)
    expect(Array.from(back.subarray(0, 8))).toEqual([-127, 1, -1, 2, 3, -3, 127, 3])
  })

  it('q8_0 activation rounding: "avx" rounds halves to even', () => {
    const x = new Float32Array(32)
    x.set([-127, 0.5, -0.5, 1.5, 2.5, -2.5])
    const ref = prepareActivation('q8_0', x, 0, 32)
    const avx = prepareActivation('q8_0', x, 0, 32, { q8_0Rounding: 'avx' })
    if (ref.kind !== 'q8_0' || avx.kind !== 'q8_0') throw new Error('wrong kind')
    expect(Array.from(ref.qs.subarray(0, 6))).toEqual([-127, 1, -1, 2, 3, -3])
    expect(Array.from(avx.qs.subarray(0, 6))).toEqual([-127, 0, 0, 2, 2, -2])
    expect(ref.d[0]).toBe(1)
  })

  it('q4_0: d = (signed max)/-8, nibble = min(15, trunc(x/d + 8.5)), low nibbles first half', () => {
    const x = new Float32Array(32)
    x.set([-8, 7, 7.6, 0, -0.5, 0.49, 0.5, -7.7])
    x[16] = 3
    x[17] = -3.4
    const bytes = quantize('q4_0', x, [32])
    expect(bytes[0] | (bytes[1] << 8)).toBe(0x3c00) // d = -8 / -8 = 1
    const lo = Array.from(bytes.subarray(2, 10), (b) => b & 0xf)
    expect(lo).toEqual([0, 15, 15, 8, 8, 8, 9, 0])
    expect(bytes[2] >> 4).toBe(11) // x[16] = 3 -> trunc(11.5)
    expect(bytes[3] >> 4).toBe(5) // x[17] = -3.4 -> trunc(5.1)
    const back = new Float32Array(32)
    dequantizeRow('q4_0', bytes, 0, 32, back, 0)
    expect(Array.from(back.subarray(0, 8))).toEqual([-8, 7, 7, 0, 0, 0, 1, -8])
    expect(back[16]).toBe(3)
    expect(back[17]).toBe(-3)

    const pos = new Float32Array(32).fill(1)
    pos[5] = 8 // positive max: d = -1
    const pb = quantize('q4_0', pos, [32])
    expect(pb[0] | (pb[1] << 8)).toBe(0xbc00)
    expect(pb[2 + 5] & 0xf).toBe(0) // 8 * -1 + 8.5 -> 0
    expect(pb[2] & 0xf).toBe(7) // 1 * -1 + 8.5 -> 7
  })
})

/** Pack 8 (scale, min) 6-bit pairs the way quantize_row_q4_K_ref does. */
function packQ4KScales (sc: number[], mn: number[]): Uint8Array {
  const s = new Uint8Array(12)
  for (let j = 0; j < 8; j++) {
    if (j < 4) {
      s[j] = sc[j]
      s[j + 4] = mn[j]
    } else {
      s[j + 4] = (sc[j] & 0xf) | ((mn[j] & 0xf) << 4)
      s[j - 4] |= (sc[j] >> 4) << 6
      s[j] |= (mn[j] >> 4) << 6
    }
  }
  return s
}

describe('K-quant block layouts (hand-built)', () => {
  it('q4_K: value = d*scale_j*q - dmin*min_j with 6-bit packed scales', () => {
    const sc = [1, 2, 17, 63, 40, 5, 33, 62]
    const mn = [0, 3, 63, 16, 48, 1, 20, 31]
    const block = new Uint8Array(144)
    block.set([0x00, 0x3c, 0x00, 0x38]) // d = 1, dmin = 0.5
    block.set(packQ4KScales(sc, mn), 4)
    const q = new Uint8Array(256).map((_, i) => (i * 7 + 3) % 16)
    // element i of each 64-chunk c: i < 32 -> low nibble of byte c*32 + i, else high nibble of byte c*32 + i - 32
    for (let c = 0; c < 4; c++) {
      for (let l = 0; l < 32; l++) block[16 + 32 * c + l] = q[64 * c + l] | (q[64 * c + 32 + l] << 4)
    }
    const out = new Float32Array(256)
    dequantizeRow('q4_K', block, 0, 256, out, 0)
    for (let i = 0; i < 256; i++) {
      const j = i >> 5
      expect(out[i]).toBe(sc[j] * q[i] - 0.5 * mn[j])
    }
  })

  it('q6_K: value = d*scale_g*(q - 32) with ql/qh split and int8 scales', () => {
    const block = new Uint8Array(210)
    const q = new Uint8Array(256).map((_, i) => (i * 13 + 5) % 64)
    const scales = [-128, -3, 0, 1, 7, 127, -60, 12, 5, -1, 99, 2, -7, 33, 64, -100]
    for (let half = 0; half < 2; half++) {
      for (let l = 0; l < 32; l++) {
        const [a, b, c, e] = [0, 32, 64, 96].map((k) => q[128 * half + k + l])
        block[64 * half + l] = (a & 0xf) | ((c & 0xf) << 4)
        block[64 * half + 32 + l] = (b & 0xf) | ((e & 0xf) << 4)
        block[128 + 32 * half + l] = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6)
      }
    }
    scales.forEach((s, g) => { block[192 + g] = s & 0xff })
    block[208] = 0x00
    block[209] = 0x38 // d = 0.5
    const out = new Float32Array(256)
    dequantizeRow('q6_K', block, 0, 256, out, 0)
    for (let i = 0; i < 256; i++) expect(out[i]).toBe(0.5 * scales[i >> 4] * (q[i] - 32))
  })

  it('q8_K activation: all-zero block gives d = 0 and zero quants; bsums are sums of 16', () => {
    const x = gaussian(512, 3)
    x.fill(0, 0, 256)
    const bytes = new Uint8Array(2 * Q8_K_BLOCK_BYTES)
    quantizeRowQ8K(x, 0, 512, bytes, 0)
    expect(bytes.subarray(0, Q8_K_BLOCK_BYTES).every((b) => b === 0)).toBe(true)
    const p = prepareActivation('q6_K', x, 0, 512)
    if (p.kind !== 'q8_K') throw new Error('wrong kind')
    expect(p.d[0]).toBe(0)
    expect(Math.max(...Array.from(p.qs.subarray(256)).map(Math.abs))).toBe(127)
    for (let g = 16; g < 32; g++) {
      let s = 0
      for (let i = 0; i < 16; i++) s += p.qs[16 * g + i]
      expect(p.bsums[g]).toBe(s)
    }
    const view = new DataView(bytes.buffer)
    expect(view.getFloat32(Q8_K_BLOCK_BYTES, true)).toBe(p.d[1])
  })
})

describe('quantize -> dequantize round trip', () => {
  const cols = 512
  const rows = 4
  const x = gaussian(rows * cols, 42)
  // relative RMS error bounds with margin over the expected quantization noise of each format
  const bounds: Record<string, number> = { f32: 0, f16: 5e-4, bf16: 4e-3, q8_0: 0.01, q6_K: 0.03, q4_K: 0.12, q4_0: 0.15 }
  for (const dtype of DTYPES) {
    it(`${dtype}: relative RMS error <= ${bounds[dtype]}`, () => {
      const data = quantize(dtype, x, [rows, cols])
      expect(data.length).toBe(tensorBytes(dtype, [rows, cols]))
      const back = dequantize({ name: 't', dtype, shape: [rows, cols], data })
      let num = 0
      let den = 0
      for (let i = 0; i < x.length; i++) {
        num += (x[i] - back[i]) ** 2
        den += x[i] ** 2
      }
      expect(Math.sqrt(num / den)).toBeLessThanOrEqual(bounds[dtype])
      if (dtype === 'f32') expect(back).toEqual(x)
    })
  }

  it('q8_0 per-element error is at most half a step (plus the f16 rounding of d)', () => {
    const data = quantize('q8_0', x, [rows, cols])
    const back = dequantize({ name: 't', dtype: 'q8_0', shape: [rows, cols], data })
    for (let b = 0; b < x.length; b += 32) {
      let amax = 0
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b + j]))
      const d = amax / 127
      for (let j = 0; j < 32; j++) expect(Math.abs(x[b + j] - back[b + j])).toBeLessThanOrEqual(0.5 * d + amax * 2 ** -10)
    }
  })

  it('reads and writes at unaligned byte offsets', () => {
    const v = gaussian(64, 5)
    for (const dtype of ['f32', 'f16', 'q8_0'] as const) {
      const buf = new Uint8Array(rowBytes(dtype, 64) + 3)
      quantizeRow(dtype, v, 0, 64, buf, 3)
      const out = new Float32Array(65)
      dequantizeRow(dtype, buf, 3, 64, out, 1)
      const direct = dequantize({ name: 't', dtype, shape: [64], data: quantize(dtype, v, [64]) })
      expect(out.subarray(1)).toEqual(direct)
      const act = prepareActivation(dtype, v, 0, 64)
      expect(dotRow(dtype, buf, 3, act)).toBe(dotRow(dtype, quantize(dtype, v, [64]), 0, act))
    }
  })
})

/** The prepared activation as the f32 values its quantized form stands for. */
function activationValues (p: PreparedActivation): Float64Array {
  switch (p.kind) {
    case 'q8_0': return Float64Array.from(p.qs, (q, i) => q * p.d[i >> 5])
    case 'q8_K': return Float64Array.from(p.qs, (q, i) => q * p.d[i >> 8])
    default: return Float64Array.from(p.values)
  }
}

describe('dotRow', () => {
  const cols = 768
  const w = gaussian(cols * 3, 7, 0.05)
  const x = gaussian(cols, 8)

  for (const dtype of DTYPES) {
    it(`${dtype}: equals dequantize(weights) . dequantize(prepared activation)`, () => {
      const cols2 = dtype === 'q4_K' || dtype === 'q6_K' ? 768 : cols
      const bytes = quantize(dtype, w, [3, cols2])
      const prepared = prepareActivation(dtype, x, 0, cols2)
      const xv = activationValues(prepared)
      const wRow = new Float32Array(cols2)
      let exactScale = 0
      for (let r = 0; r < 3; r++) {
        dequantizeRow(dtype, bytes, r * rowBytes(dtype, cols2), cols2, wRow, 0)
        let expected = 0
        let magnitude = 0
        let trueDot = 0
        for (let i = 0; i < cols2; i++) {
          expected += wRow[i] * xv[i]
          magnitude += Math.abs(wRow[i] * xv[i])
          trueDot += w[r * cols2 + i] * x[i]
        }
        const got = dotRow(dtype, bytes, r * rowBytes(dtype, cols2), prepared)
        // same math up to the f32 rounding of the per-block scale product (q8_K's d is a full f32)
        expect(Math.abs(got - expected)).toBeLessThanOrEqual(1e-6 * magnitude)
        // and close to the unquantized dot within the formats' quantization noise
        expect(Math.abs(got - trueDot)).toBeLessThanOrEqual(0.1 * magnitude)
        exactScale += magnitude
      }
      expect(exactScale).toBeGreaterThan(0)
    })
  }

  it('q8_0 and q4_0 match an independent naive integer implementation exactly', () => {
    for (const dtype of ['q8_0', 'q4_0'] as const) {
      const bytes = quantize(dtype, w, [3, cols])
      const prepared = prepareActivation(dtype, x, 0, cols)
      if (prepared.kind !== 'q8_0') throw new Error('wrong kind')
      const view = new DataView(bytes.buffer)
      const blockBytes = DTYPE_INFO[dtype].blockBytes
      for (let r = 0; r < 3; r++) {
        let sum = 0
        for (let b = 0; b < cols / 32; b++) {
          const p = r * rowBytes(dtype, cols) + b * blockBytes
          const dw = f16ToF32(view.getUint16(p, true))
          let sumi = 0
          for (let j = 0; j < 32; j++) {
            const wq = dtype === 'q8_0'
              ? view.getInt8(p + 2 + j)
              : (j < 16 ? (view.getUint8(p + 2 + j) & 15) : (view.getUint8(p + 2 + j - 16) >> 4)) - 8
            sumi += wq * prepared.qs[32 * b + j]
          }
          sum += sumi * Math.fround(dw * prepared.d[b])
        }
        expect(dotRow(dtype, bytes, r * rowBytes(dtype, cols), prepared)).toBe(sum)
      }
    }
  })

  it('rejects an activation prepared for another dot type, and short buffers', () => {
    const bytes = quantize('q4_K', gaussian(256, 1), [256])
    const asQ8_0 = prepareActivation('q8_0', gaussian(256, 2), 0, 256)
    expect(() => dotRow('q4_K', bytes, 0, asQ8_0)).toThrow(/q8_K activation/)
    const asQ8K = prepareActivation('q4_K', gaussian(256, 2), 0, 256)
    expect(() => dotRow('q4_K', bytes, 1, asQ8K)).toThrow(QuantLayoutError)
    expect(() => prepareActivation('q6_K', gaussian(300, 2), 0, 300)).toThrow(/multiple of 256/)
  })
})
