/**
 * Byte/bit-exactness of packages/kernels/src/quant against ggml itself: the prebuilt libggml-base.so (reference
 * quantizers, dequantizers, f16/bf16 conversion) and libggml-cpu-haswell.so (activation quantizers and the
 * generic vec_dot kernels) shipped with node-llama-cpp, called through koffi on seeded random data.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import koffi from 'koffi'
import { describe, expect, it } from 'vitest'
// the quant module directly (not '@swarm/kernels'), so this oracle check does not depend on the rest of the package
import {
  DTYPE_INFO, dequantizeRow, dotRow, f32ToBf16, f32ToF16, prepareActivation, preparedActivationBytes, quantize,
  quantizeRowQ8_0, quantizeRowQ8K, rowBytes, Q8_K_BLOCK_BYTES
} from '../packages/kernels/src/quant/index.js'
import type { PreparedQ8_0Activation, PreparedQ8KActivation } from '../packages/kernels/src/quant/index.js'
import type { DType } from '../packages/kernels/src/types.js'

function findLibDir (): string | undefined {
  const dir = fileURLToPath(new URL('./node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/', import.meta.url))
  return existsSync(join(dir, 'libggml-base.so')) ? dir : undefined
}

const libDir = process.platform === 'linux' && process.arch === 'x64' ? findLibDir() : undefined
const cpuFlags = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : ''
const hasHaswell = ['avx2', 'fma', 'f16c'].every((flag) => new RegExp(`\\b${flag}\\b`).test(cpuFlags))

/** mulberry32: small seeded PRNG so failures reproduce */
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

/**
 * Rows of mixed character, 256 values per "segment": gaussian, heavy-tailed with outliers, all-zero, constant,
 * positive-only, tiny (subnormal-range f16 scales), and multiples of 1/8 (many exact rounding ties).
 */
function testData (n: number, seed: number): Float32Array {
  const r = rng(seed)
  const out = new Float32Array(n)
  const gauss = (): number => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r())
  for (let s = 0; s < n; s += 256) {
    const kind = (s / 256) % 7
    for (let i = s; i < Math.min(n, s + 256); i++) {
      switch (kind) {
        case 0: out[i] = gauss(); break
        case 1: out[i] = gauss() * (r() < 0.02 ? 40 : 0.05); break
        case 2: out[i] = 0; break
        case 3: out[i] = 0.75; break
        case 4: out[i] = r() * 3; break
        case 5: out[i] = gauss() * 1e-6; break
        default: out[i] = Math.round(gauss() * 64) / 8
      }
    }
  }
  return out
}

function bits (a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length)
}

describe.skipIf(libDir === undefined)('quant vs ggml (libggml-base)', () => {
  if (libDir === undefined) return
  const base = koffi.load(join(libDir, 'libggml-base.so'))
  const refQuantizers: Partial<Record<DType, (x: Float32Array, y: Uint8Array, k: number) => void>> = {
    q8_0: base.func('void quantize_row_q8_0_ref(const float *x, void *y, int64_t k)'),
    q4_0: base.func('void quantize_row_q4_0_ref(const float *x, void *y, int64_t k)'),
    q4_K: base.func('void quantize_row_q4_K_ref(const float *x, void *y, int64_t k)'),
    q6_K: base.func('void quantize_row_q6_K_ref(const float *x, void *y, int64_t k)')
  }
  const quantizeChunk = base.func('size_t ggml_quantize_chunk(int type, const float *src, void *dst, int64_t start, int64_t nrows, int64_t n_per_row, const float *imatrix)')
  const dequantizers: Record<DType, (x: Uint8Array, y: Float32Array, k: number) => void> = {
    f32: (x, y, k) => { y.set(new Float32Array(x.buffer, x.byteOffset, k)) },
    f16: base.func('void ggml_fp16_to_fp32_row(const void *x, float *y, int64_t k)'),
    bf16: base.func('void ggml_bf16_to_fp32_row(const void *x, float *y, int64_t k)'),
    q8_0: base.func('void dequantize_row_q8_0(const void *x, float *y, int64_t k)'),
    q4_0: base.func('void dequantize_row_q4_0(const void *x, float *y, int64_t k)'),
    q4_K: base.func('void dequantize_row_q4_K(const void *x, float *y, int64_t k)'),
    q6_K: base.func('void dequantize_row_q6_K(const void *x, float *y, int64_t k)')
  }
  const bf16RowRef = base.func('void ggml_fp32_to_bf16_row_ref(const float *x, void *y, int64_t n)')
  const q8KRef = base.func('void quantize_row_q8_K_ref(const float *x, void *y, int64_t k)')

  const cols = 1024
  const rows = 7 // 7 kinds of 256-value segments, rotated across rows
  const data = testData(rows * cols, 1234)

  // a second data set at another scale, with other segment kinds per row
  const data2 = testData(rows * cols + 512, 4321).subarray(512).map((v) => v * 300)

  for (const dtype of ['q8_0', 'q4_0', 'q4_K', 'q6_K'] as const) {
    it(`quantizeRow ${dtype} is byte-identical to quantize_row_${dtype}_ref and ggml_quantize_chunk`, () => {
      for (const input of [data, data2]) {
        const ours = quantize(dtype, input, [rows, cols])
        const theirs = new Uint8Array(ours.length)
        refQuantizers[dtype]!(input, theirs, rows * cols)
        expect(Buffer.from(ours).equals(Buffer.from(theirs))).toBe(true)
        const chunk = new Uint8Array(ours.length)
        expect(Number(quantizeChunk(DTYPE_INFO[dtype].ggmlType, input, chunk, 0, rows, cols, null))).toBe(ours.length)
        expect(Buffer.from(ours).equals(Buffer.from(chunk))).toBe(true)
      }
    })
  }

  it('quantizeRow f16/bf16 is bit-identical to ggml rows (finite values)', () => {
    const x = testData(7 * 256, 99)
    const ours = quantize('bf16', x, [x.length])
    const theirs = new Uint8Array(ours.length)
    bf16RowRef(x, theirs, x.length)
    expect(Buffer.from(ours).equals(Buffer.from(theirs))).toBe(true)
  })

  for (const dtype of Object.keys(DTYPE_INFO) as DType[]) {
    it(`dequantizeRow ${dtype} is bit-identical to ggml on random blocks`, () => {
      const r = rng(DTYPE_INFO[dtype].ggmlType + 7)
      const n = 512
      const bytes = new Uint8Array(rowBytes(dtype, n))
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(r() * 256)
      // keep block scales finite (random f16 exponent below 31) so every output is a number
      const { blockBytes } = DTYPE_INFO[dtype]
      const scaleOffsets = dtype === 'q8_0' || dtype === 'q4_0' ? [1] : dtype === 'q4_K' ? [1, 3] : dtype === 'q6_K' ? [209] : []
      for (let b = 0; b < bytes.length; b += blockBytes) for (const o of scaleOffsets) bytes[b + o] &= 0x7b
      if (dtype === 'f32') for (let i = 3; i < bytes.length; i += 4) bytes[i] &= 0x7b
      const ours = new Float32Array(n)
      const theirs = new Float32Array(n)
      dequantizeRow(dtype, bytes, 0, n, ours, 0)
      dequantizers[dtype](bytes, theirs, n)
      expect(bits(ours)).toEqual(bits(theirs))
    })
  }

  it('f16 and bf16 widening is bit-identical for all 65536 patterns (NaN payloads included)', () => {
    const all = new Uint16Array(65536).map((_, i) => i)
    const allBytes = new Uint8Array(all.buffer)
    for (const dtype of ['f16', 'bf16'] as const) {
      const ours = new Float32Array(65536)
      const theirs = new Float32Array(65536)
      dequantizeRow(dtype, allBytes, 0, 65536, ours, 0)
      dequantizers[dtype](allBytes, theirs, 65536)
      expect(bits(ours)).toEqual(bits(theirs))
    }
  })

  it('f32ToBf16 matches ggml_fp32_to_bf16_row_ref on random bit patterns, NaN, inf and ties', () => {
    const r = rng(5)
    const u = new Uint32Array(20000)
    for (let i = 0; i < u.length; i++) u[i] = Math.floor(r() * 4294967296)
    u.set([0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffffffff, 0x3f808000, 0x3f818000, 0x7f7fffff, 0x00008000, 0x80018000])
    const x = new Float32Array(u.buffer)
    const theirs = new Uint16Array(x.length)
    bf16RowRef(x, theirs, x.length)
    const ours = new Uint16Array(x.length)
    for (let i = 0; i < x.length; i++) ours[i] = f32ToBf16(x[i])
    expect(ours).toEqual(theirs)
  })

  it('quantizeRowQ8K is byte-identical to quantize_row_q8_K_ref', () => {
    const ours = new Uint8Array((rows * cols / 256) * Q8_K_BLOCK_BYTES)
    const theirs = new Uint8Array(ours.length)
    quantizeRowQ8K(data, 0, rows * cols, ours, 0)
    q8KRef(data, theirs, rows * cols)
    // ggml leaves bsums of an all-zero block uninitialized; we write zeros. Compare d and quants everywhere,
    // bsums where the block is not all zero.
    for (let b = 0; b < ours.length; b += Q8_K_BLOCK_BYTES) {
      const allZero = data.subarray((b / Q8_K_BLOCK_BYTES) * 256, (b / Q8_K_BLOCK_BYTES + 1) * 256).every((v) => v === 0)
      const end = allZero ? b + 4 + 256 : b + Q8_K_BLOCK_BYTES
      expect(Buffer.from(ours.subarray(b, end)).equals(Buffer.from(theirs.subarray(b, end)))).toBe(true)
    }
  })
})

describe.skipIf(libDir === undefined || !hasHaswell)('quant vs ggml-cpu (haswell build: activations, vec_dot)', () => {
  if (libDir === undefined || !hasHaswell) return
  koffi.load(join(libDir, 'libggml-base.so'))
  const cpu = koffi.load(join(libDir, 'libggml-cpu-haswell.so'))
  cpu.func('void ggml_cpu_init(void)')()
  const fp32ToFp16 = cpu.func('void ggml_cpu_fp32_to_fp16(const float *x, void *y, int64_t n)')
  const quantizeQ8_0Avx = cpu.func('void quantize_row_q8_0(const float *x, void *y, int64_t k)')
  const quantizeQ8_0Generic = cpu.func('void quantize_row_q8_0_generic(const float *x, void *y, int64_t k)')
  const quantizeQ8K = cpu.func('void quantize_row_q8_K(const float *x, void *y, int64_t k)')
  const vecDotSig = (name: string): ((n: number, s: Float32Array, bs: number, x: Uint8Array, bx: number, y: Uint8Array, by: number, nrc: number) => void) =>
    cpu.func(`void ${name}(int n, float *s, size_t bs, const void *x, size_t bx, const void *y, size_t by, int nrc)`)
  const vecDot: Record<DType, ReturnType<typeof vecDotSig>> = {
    f32: vecDotSig('ggml_vec_dot_f32'),
    f16: vecDotSig('ggml_vec_dot_f16'),
    bf16: vecDotSig('ggml_vec_dot_bf16'),
    q8_0: vecDotSig('ggml_vec_dot_q8_0_q8_0_generic'),
    q4_0: vecDotSig('ggml_vec_dot_q4_0_q8_0_generic'),
    q4_K: vecDotSig('ggml_vec_dot_q4_K_q8_K_generic'),
    q6_K: vecDotSig('ggml_vec_dot_q6_K_q8_K_generic')
  }

  it('f32ToF16 matches F16C conversion (ggml_cpu_fp32_to_fp16) on random bit patterns and edge cases', () => {
    const r = rng(11)
    const u = new Uint32Array(20000)
    for (let i = 0; i < u.length; i++) u[i] = Math.floor(r() * 4294967296)
    // f16 ties (normal and subnormal), overflow boundary 65520, min subnormal halves, NaN payloads, inf
    u.set([0x3f801000, 0x3f803000, 0x477ff000, 0x477fefff, 0x33000000, 0x33000001, 0x337fffff, 0x33c00000,
      0x387fc000, 0x38800000, 0x7f800000, 0xff800000, 0x7f800001, 0x7fa00000, 0xffc00123, 0x80000000, 0x00000001])
    const x = new Float32Array(u.buffer)
    const theirs = new Uint16Array(x.length)
    fp32ToFp16(x, theirs, x.length)
    const ours = new Uint16Array(x.length)
    for (let i = 0; i < x.length; i++) ours[i] = f32ToF16(x[i])
    expect(ours).toEqual(theirs)
  })

  const cols = 1024
  const x = testData(cols * 2, 77).subarray(0, cols) // gaussian, outliers, zeros, constant segments

  it('q8_0 activations: "avx" matches quantize_row_q8_0 (AVX2), "ref" matches the generic path', () => {
    // ties: values that land exactly on .5 after scaling by 127/amax
    const tie = new Float32Array(cols).map((_, i) => (i % 32 === 0 ? 127 : (i % 7) - 3.5))
    for (const input of [x, tie]) {
      for (const [rounding, fn] of [['avx', quantizeQ8_0Avx], ['ref', quantizeQ8_0Generic]] as const) {
        const prepared = prepareActivation('q8_0', input, 0, cols, { q8_0Rounding: rounding }) as PreparedQ8_0Activation
        const theirs = new Uint8Array(rowBytes('q8_0', cols))
        fn(input, theirs, cols)
        expect(Buffer.from(preparedActivationBytes(prepared)).equals(Buffer.from(theirs))).toBe(true)
        const direct = new Uint8Array(theirs.length)
        quantizeRowQ8_0(input, 0, cols, direct, 0, rounding)
        expect(Buffer.from(direct).equals(Buffer.from(theirs))).toBe(true)
      }
    }
  })

  it('q8_K activations match quantize_row_q8_K', () => {
    const input = testData(cols, 3) // first segment gaussian, no all-zero block in 1024? segment 2 is zero
    const prepared = prepareActivation('q4_K', input, 0, cols) as PreparedQ8KActivation
    const theirs = new Uint8Array((cols / 256) * Q8_K_BLOCK_BYTES)
    quantizeQ8K(input, theirs, cols)
    const ours = preparedActivationBytes(prepared)
    for (let b = 0; b < ours.length; b += Q8_K_BLOCK_BYTES) {
      const allZero = prepared.d[b / Q8_K_BLOCK_BYTES] === 0
      const end = allZero ? b + 4 + 256 : b + Q8_K_BLOCK_BYTES
      expect(Buffer.from(ours.subarray(b, end)).equals(Buffer.from(theirs.subarray(b, end)))).toBe(true)
    }
  })

  for (const dtype of Object.keys(DTYPE_INFO) as DType[]) {
    it(`dotRow ${dtype} equals ggml's vec_dot on the same converted activation`, () => {
      const w = testData(cols, 500 + DTYPE_INFO[dtype].ggmlType)
      const wBytes = quantize(dtype, w, [cols])
      for (const seed of [1, 2, 3]) {
        const act = testData(cols + 256 * seed, seed).subarray(256 * seed) // rotate the segment kinds
        const prepared = prepareActivation(dtype, act, 0, cols)
        let actBytes: Uint8Array
        if (prepared.kind === 'q8_0' || prepared.kind === 'q8_K') actBytes = preparedActivationBytes(prepared)
        else actBytes = quantize(prepared.kind, prepared.values, [cols])
        const s = new Float32Array(1)
        vecDot[dtype](cols, s, 0, wBytes, 0, actBytes, 0, 1)
        const ours = dotRow(dtype, wBytes, 0, prepared)
        // ggml sums in f32 (in its own order); we sum the same exact block terms in f64
        let scale = 0
        for (let i = 0; i < cols; i++) scale += Math.abs(w[i] * act[i])
        expect(Math.abs(ours - s[0])).toBeLessThanOrEqual(1e-5 * scale + 1e-30)
      }
    })
  }
})
