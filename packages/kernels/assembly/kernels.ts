// WebAssembly SIMD kernels of the wasm backend (AssemblyScript, compiled by `pnpm run build:wasm`).
//
// No runtime, no allocation: every argument is a byte address into the (shared, imported) memory, which the JS side
// manages. Weights are read in their stored format (ggml block layouts, see src/quant/dtypes.ts); nothing is
// expanded to f32. Matmul kernels compute rows [r0, r1) of out[T, rows] = x[T, cols] . W^T, so that threads can split
// rows. Quantized weights take an activation pre-quantized to q8_0 (or q8_K) whose quants are widened to int16 once
// per token, so the inner loops widen only the weights before i32x4.dot_i16x8_s (pmaddwd).
//
// Relaxed SIMD: when compiled with --enable relaxed-simd, f32 multiply-adds use f32x4.relaxed_madd (an FMA where
// the CPU has one); the JS side picks that binary only after WebAssembly.validate accepts it.
// The relaxed int8 dot (i32x4.relaxed_dot_i8x16_i7x16_add_s) is deliberately not used: on Node 20's V8 (11.3, behind
// --experimental-wasm-relaxed-simd) the baseline tier (Liftoff) computed it differently from TurboFan, so a kernel's
// first calls gave other results than its later ones, and optimized it was 2x slower than the int16 path for q8_0.

// ---- helpers ----

/** f16 bits -> f32 (subnormals exact; inf/nan kept) */
@inline function f16ToF32 (h: u32): f32 {
  const em = h & 0x7fff
  let bits = reinterpret<u32>(reinterpret<f32>(em << 13) * reinterpret<f32>(0x77800000)) // * 2^112
  if (em >= 0x7c00) bits = (em << 13) | 0x7f800000
  return reinterpret<f32>(bits | ((h & 0x8000) << 16))
}

/**
 * 4 f16, sign-extended to i32 lanes (i32x4.extend_*_i16x8_s), as f32x4 (inf/nan are not special-cased here): << 13
 * puts the sign at bit 31 (its copies at 30..28, masked off) and exponent and mantissa at 27..13, and * 2^112
 * rebiases the exponent, exact for subnormals too
 */
@inline function f16x4ToF32 (h32: v128): v128 {
  return f32x4.mul(v128.and(i32x4.shl(h32, 13), i32x4.splat(0x8fffffff)), f32x4.splat(reinterpret<f32>(0x77800000)))
}

@inline function fmadd (a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c)
  return f32x4.add(f32x4.mul(a, b), c)
}

@inline function hsum (v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3))
}

/** 1 when compiled with relaxed SIMD */
export function relaxed (): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 1 : 0
}

// ---- f32 weights ----
// f32 and f16 weights with more than COL_TILE columns are stored in column tiles (the wasm backend lays them out so
// when it copies them in): tile c holds columns [c * COL_TILE, (c + 1) * COL_TILE) of every row, row after row. A
// tile's slice of x (8 KiB of f32) stays in L1 while the tile streams past it; rows of 5632 values read at 14 GB/s
// from DRAM against 24 GB/s for 2048 values, as x no longer stayed cached.

/** columns per tile (keep equal to COL_TILE in src/wasm/backend.ts) */
const COL_TILE = 2048

/** dot of n f32 at w and x */
@inline function dotF32 (w: usize, x: usize, n: i32): f32 {
  let a0 = f32x4.splat(0)
  let a1 = f32x4.splat(0)
  let a2 = f32x4.splat(0)
  let a3 = f32x4.splat(0)
  let i = 0
  for (; i + 16 <= n; i += 16) {
    const o = <usize>i << 2
    a0 = fmadd(v128.load(w + o), v128.load(x + o), a0)
    a1 = fmadd(v128.load(w + o, 16), v128.load(x + o, 16), a1)
    a2 = fmadd(v128.load(w + o, 32), v128.load(x + o, 32), a2)
    a3 = fmadd(v128.load(w + o, 48), v128.load(x + o, 48), a3)
  }
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2
    a0 = fmadd(v128.load(w + o), v128.load(x + o), a0)
  }
  let s = hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)))
  for (; i < n; i++) s += load<f32>(w + (<usize>i << 2)) * load<f32>(x + (<usize>i << 2))
  return s
}

/**
 * out[t, r] (+)= x[t, 0..n) . w[r, 0..n) for rows [r0, r1): one column tile of matmul_f32. w rows are n values apart,
 * x rows xStride bytes; `add`: add to out instead of storing.
 */
@inline function matmulF32Tile (w: usize, x: usize, xStride: usize, out: usize, rows: i32, n: i32, T: i32, r0: i32, r1: i32, add: bool): void {
  const rowBytes = <usize>n << 2
  let t = 0
  // 4 tokens at a time: every weight vector loaded once feeds 4 dot products (prefill)
  for (; t + 4 <= T; t += 4) {
    const x0 = x + <usize>t * xStride
    const x1 = x0 + xStride
    const x2 = x1 + xStride
    const x3 = x2 + xStride
    let r = r0
    // 2 rows x 4 tokens: 8 accumulators, 6 loads per 8 multiply-adds
    for (; r + 2 <= r1; r += 2) {
      const wr = w + <usize>r * rowBytes
      const wq = wr + rowBytes
      let a0 = f32x4.splat(0)
      let a1 = f32x4.splat(0)
      let a2 = f32x4.splat(0)
      let a3 = f32x4.splat(0)
      let b0 = f32x4.splat(0)
      let b1 = f32x4.splat(0)
      let b2 = f32x4.splat(0)
      let b3 = f32x4.splat(0)
      let i = 0
      for (; i + 4 <= n; i += 4) {
        const o = <usize>i << 2
        const wv = v128.load(wr + o)
        const wv2 = v128.load(wq + o)
        let xv = v128.load(x0 + o)
        a0 = fmadd(wv, xv, a0)
        b0 = fmadd(wv2, xv, b0)
        xv = v128.load(x1 + o)
        a1 = fmadd(wv, xv, a1)
        b1 = fmadd(wv2, xv, b1)
        xv = v128.load(x2 + o)
        a2 = fmadd(wv, xv, a2)
        b2 = fmadd(wv2, xv, b2)
        xv = v128.load(x3 + o)
        a3 = fmadd(wv, xv, a3)
        b3 = fmadd(wv2, xv, b3)
      }
      let s0 = hsum(a0)
      let s1 = hsum(a1)
      let s2 = hsum(a2)
      let s3 = hsum(a3)
      let u0 = hsum(b0)
      let u1 = hsum(b1)
      let u2 = hsum(b2)
      let u3 = hsum(b3)
      for (; i < n; i++) {
        const o = <usize>i << 2
        const wv = load<f32>(wr + o)
        const wv2 = load<f32>(wq + o)
        s0 += wv * load<f32>(x0 + o)
        s1 += wv * load<f32>(x1 + o)
        s2 += wv * load<f32>(x2 + o)
        s3 += wv * load<f32>(x3 + o)
        u0 += wv2 * load<f32>(x0 + o)
        u1 += wv2 * load<f32>(x1 + o)
        u2 += wv2 * load<f32>(x2 + o)
        u3 += wv2 * load<f32>(x3 + o)
      }
      const po = out + ((<usize>t * rows + r) << 2)
      store<f32>(po, add ? load<f32>(po) + s0 : s0)
      store<f32>(po + (<usize>rows << 2), add ? load<f32>(po + (<usize>rows << 2)) + s1 : s1)
      store<f32>(po + (<usize>rows << 3), add ? load<f32>(po + (<usize>rows << 3)) + s2 : s2)
      store<f32>(po + (<usize>rows * 12), add ? load<f32>(po + (<usize>rows * 12)) + s3 : s3)
      store<f32>(po, add ? load<f32>(po, 4) + u0 : u0, 4)
      store<f32>(po + (<usize>rows << 2), add ? load<f32>(po + (<usize>rows << 2), 4) + u1 : u1, 4)
      store<f32>(po + (<usize>rows << 3), add ? load<f32>(po + (<usize>rows << 3), 4) + u2 : u2, 4)
      store<f32>(po + (<usize>rows * 12), add ? load<f32>(po + (<usize>rows * 12), 4) + u3 : u3, 4)
    }
    for (; r < r1; r++) {
      const wr = w + <usize>r * rowBytes
      let a0 = f32x4.splat(0)
      let a1 = f32x4.splat(0)
      let a2 = f32x4.splat(0)
      let a3 = f32x4.splat(0)
      let b0 = f32x4.splat(0)
      let b1 = f32x4.splat(0)
      let b2 = f32x4.splat(0)
      let b3 = f32x4.splat(0)
      let i = 0
      for (; i + 8 <= n; i += 8) {
        const o = <usize>i << 2
        const wv = v128.load(wr + o)
        const wv2 = v128.load(wr + o, 16)
        a0 = fmadd(wv, v128.load(x0 + o), a0)
        a1 = fmadd(wv, v128.load(x1 + o), a1)
        a2 = fmadd(wv, v128.load(x2 + o), a2)
        a3 = fmadd(wv, v128.load(x3 + o), a3)
        b0 = fmadd(wv2, v128.load(x0 + o, 16), b0)
        b1 = fmadd(wv2, v128.load(x1 + o, 16), b1)
        b2 = fmadd(wv2, v128.load(x2 + o, 16), b2)
        b3 = fmadd(wv2, v128.load(x3 + o, 16), b3)
      }
      let s0 = hsum(f32x4.add(a0, b0))
      let s1 = hsum(f32x4.add(a1, b1))
      let s2 = hsum(f32x4.add(a2, b2))
      let s3 = hsum(f32x4.add(a3, b3))
      for (; i < n; i++) {
        const o = <usize>i << 2
        const wv = load<f32>(wr + o)
        s0 += wv * load<f32>(x0 + o)
        s1 += wv * load<f32>(x1 + o)
        s2 += wv * load<f32>(x2 + o)
        s3 += wv * load<f32>(x3 + o)
      }
      const po = out + ((<usize>t * rows + r) << 2)
      store<f32>(po, add ? load<f32>(po) + s0 : s0)
      store<f32>(po + (<usize>rows << 2), add ? load<f32>(po + (<usize>rows << 2)) + s1 : s1)
      store<f32>(po + (<usize>rows << 3), add ? load<f32>(po + (<usize>rows << 3)) + s2 : s2)
      store<f32>(po + (<usize>rows * 12), add ? load<f32>(po + (<usize>rows * 12)) + s3 : s3)
    }
  }
  decodeTile(false, w, x, xStride, out, rows, n, t, T, r0, r1, add)
}

/** tokens [t, T) of a column tile, one at a time (decode): dots of the tile's rows with x, stored or added */
@inline function decodeTile (f16: bool, w: usize, x: usize, xStride: usize, out: usize, rows: i32, n: i32, t: i32, T: i32, r0: i32, r1: i32, add: bool): void {
  const rowBytes = <usize>n << (f16 ? 1 : 2)
  for (; t < T; t++) {
    const xt = x + <usize>t * xStride
    for (let r = r0; r < r1; r++) {
      const po = out + ((<usize>t * rows + r) << 2)
      const d = f16 ? dotF16(w + <usize>r * rowBytes, xt, n) : dotF32(w + <usize>r * rowBytes, xt, n)
      store<f32>(po, add ? load<f32>(po) + d : d)
    }
  }
}

/** out[t, r] = x[t] . w[r] over column tiles of f32 (f16: false) or f16 weights, the first tile stored, the rest added */
@inline function matmulTiled (f16: bool, w: usize, x: usize, out: usize, rows: i32, cols: i32, T: i32, r0: i32, r1: i32): void {
  let tile = w
  for (let c = 0; c < cols; c += COL_TILE) {
    const n = min(COL_TILE, cols - c)
    if (f16) matmulF16Tile(tile, x + (<usize>c << 2), <usize>cols << 2, out, rows, n, T, r0, r1, c > 0)
    else matmulF32Tile(tile, x + (<usize>c << 2), <usize>cols << 2, out, rows, n, T, r0, r1, c > 0)
    tile += <usize>rows * n << (f16 ? 1 : 2)
  }
}

export function matmul_f32 (w: usize, x: usize, out: usize, rows: i32, cols: i32, T: i32, r0: i32, r1: i32): void {
  matmulTiled(false, w, x, out, rows, cols, T, r0, r1)
}

// ---- f16 weights ----

@inline function dotF16 (w: usize, x: usize, n: i32): f32 {
  let a0 = f32x4.splat(0)
  let a1 = f32x4.splat(0)
  let i = 0
  for (; i + 8 <= n; i += 8) {
    // 4 halves loaded and sign-extended to int32 lanes in one instruction (pmovsxwd from memory)
    const wo = w + (<usize>i << 1)
    const xo = x + (<usize>i << 2)
    a0 = fmadd(f16x4ToF32(v128.load16x4_s(wo)), v128.load(xo), a0)
    a1 = fmadd(f16x4ToF32(v128.load16x4_s(wo, 8)), v128.load(xo, 16), a1)
  }
  let s = hsum(f32x4.add(a0, a1))
  for (; i < n; i++) s += f16ToF32(load<u16>(w + (<usize>i << 1))) * load<f32>(x + (<usize>i << 2))
  return s
}

/** one column tile of matmul_f16, as matmulF32Tile */
@inline function matmulF16Tile (w: usize, x: usize, xRowBytes: usize, out: usize, rows: i32, n: i32, T: i32, r0: i32, r1: i32, add: bool): void {
  const wRowBytes = <usize>n << 1
  let t = 0
  for (; t + 4 <= T; t += 4) {
    const x0 = x + <usize>t * xRowBytes
    const x1 = x0 + xRowBytes
    const x2 = x1 + xRowBytes
    const x3 = x2 + xRowBytes
    for (let r = r0; r < r1; r++) {
      const wr = w + <usize>r * wRowBytes
      let a0 = f32x4.splat(0)
      let a1 = f32x4.splat(0)
      let a2 = f32x4.splat(0)
      let a3 = f32x4.splat(0)
      let i = 0
      for (; i + 8 <= n; i += 8) {
        const lo = f16x4ToF32(v128.load16x4_s(wr + (<usize>i << 1)))
        const hi = f16x4ToF32(v128.load16x4_s(wr + (<usize>i << 1), 8))
        const o = <usize>i << 2
        a0 = fmadd(hi, v128.load(x0 + o, 16), fmadd(lo, v128.load(x0 + o), a0))
        a1 = fmadd(hi, v128.load(x1 + o, 16), fmadd(lo, v128.load(x1 + o), a1))
        a2 = fmadd(hi, v128.load(x2 + o, 16), fmadd(lo, v128.load(x2 + o), a2))
        a3 = fmadd(hi, v128.load(x3 + o, 16), fmadd(lo, v128.load(x3 + o), a3))
      }
      let s0 = hsum(a0)
      let s1 = hsum(a1)
      let s2 = hsum(a2)
      let s3 = hsum(a3)
      for (; i < n; i++) {
        const wv = f16ToF32(load<u16>(wr + (<usize>i << 1)))
        const o = <usize>i << 2
        s0 += wv * load<f32>(x0 + o)
        s1 += wv * load<f32>(x1 + o)
        s2 += wv * load<f32>(x2 + o)
        s3 += wv * load<f32>(x3 + o)
      }
      const po = out + ((<usize>t * rows + r) << 2)
      store<f32>(po, add ? load<f32>(po) + s0 : s0)
      store<f32>(po + (<usize>rows << 2), add ? load<f32>(po + (<usize>rows << 2)) + s1 : s1)
      store<f32>(po + (<usize>rows << 3), add ? load<f32>(po + (<usize>rows << 3)) + s2 : s2)
      store<f32>(po + (<usize>rows * 12), add ? load<f32>(po + (<usize>rows * 12)) + s3 : s3)
    }
  }
  decodeTile(true, w, x, xRowBytes, out, rows, n, t, T, r0, r1, add)
}

export function matmul_f16 (w: usize, x: usize, out: usize, rows: i32, cols: i32, T: i32, r0: i32, r1: i32): void {
  matmulTiled(true, w, x, out, rows, cols, T, r0, r1)
}

// ---- q8_0 activations ----

/** f32 -> f16 bits, round to nearest even (as ggml's GGML_FP32_TO_FP16 on x86 with F16C) */
function f32ToF16 (f: f32): u32 {
  const x = reinterpret<u32>(f)
  const sign = (x >> 16) & 0x8000
  const ax = x & 0x7fffffff
  if (ax >= 0x7f800000) return sign | 0x7c00 | (ax > 0x7f800000 ? 0x200 : 0)
  if (ax >= 0x477ff000) return sign | 0x7c00 // rounds to inf
  if (ax < 0x38800000) { // subnormal f16 (or zero)
    // value * 2^24 rounded to nearest even integer = subnormal mantissa
    const v = reinterpret<f32>(ax) * <f32>16777216.0
    return sign | <u32>nearest<f32>(v)
  }
  // normal: rebias exponent, round mantissa to 10 bits (nearest even)
  const m = ax + 0xfff + ((ax >> 13) & 1)
  return sign | ((m - 0x38000000) >> 13)
}

/**
 * T rows of `cols` f32 at x -> q8_0 as llama.cpp's x86 (AVX2) quantize_row_q8_0 does for activations, which the CPU
 * reference follows: per 32 values d = amax/127 (stored rounded to f16, written as its f32 value at xd),
 * q = round-half-even(x * (127/amax)), written as int8 at xq ([T, cols]).
 */
export function quantize_q8_0 (x: usize, xq: usize, xd: usize, cols: i32, T: i32): void {
  const nb = cols >> 5
  for (let t = 0; t < T; t++) {
    for (let b = 0; b < nb; b++) {
      const src = x + ((<usize>t * cols + (b << 5)) << 2)
      let am = f32x4.abs(v128.load(src))
      for (let j = 16; j < 128; j += 16) am = f32x4.max(am, f32x4.abs(v128.load(src + j)))
      const amax = Mathf.max(Mathf.max(f32x4.extract_lane(am, 0), f32x4.extract_lane(am, 1)),
        Mathf.max(f32x4.extract_lane(am, 2), f32x4.extract_lane(am, 3)))
      const d: f32 = amax / 127
      const id = f32x4.splat(amax != 0 ? <f32>127 / amax : 0)
      store<f32>(xd + ((<usize>t * nb + b) << 2), f16ToF32(f32ToF16(d)))
      const dst = xq + <usize>t * cols + (b << 5)
      for (let j = 0; j < 32; j += 16) {
        const q0 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(src + (j << 2)), id)))
        const q1 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(src + (j << 2), 16), id)))
        const q2 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(src + (j << 2), 32), id)))
        const q3 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(src + (j << 2), 48), id)))
        v128.store(dst + j, i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(q0, q1), i16x8.narrow_i32x4_s(q2, q3)))
      }
    }
  }
}

// ---- q8_0 / q4_0 weights x q8_0 activations ----
// The activation is quantized to q8_0 (quantize_q8_0) and then laid out by widen_q8_0 for the matmul kernels:
// - its quants widened to int16, so that the inner loops widen only the weights before i32x4.dot_i16x8_s (pmaddwd);
// - tokens taken in groups of 4 (prefill) stored block-interleaved: for each block, the group's 4 tokens' 32 int16
//   quants one after the other (xw), and their 4 scales as one f32x4 (xs). A group's loop then reads every operand
//   at a constant offset from one pointer, and builds the 4 scales of a weight block with one multiply. Tokens past
//   the last full group (decode) are stored one at a time, which is the same layout with a group of 1.
// Weight block scales are read through a 65536-entry f16 -> f32 table (`lut`, 256 KiB) that the JS side fills,
// cheaper than decoding f16 bits in the loop.
//
// q4_0 weights: a block's 16 bytes hold element j in the low nibble of byte j and element j + 16 in its high nibble.
// Read as 8 int16 lanes, the nibbles come out with one mask or shift each: lane & 15 = elements 0, 2, .., 14;
// (lane >> 8) & 15 = 1, 3, .., 15; (lane >> 4) & 15 = 16, 18, .., 30; lane >> 12 = 17, 19, .., 31. For q4_0 the
// activation's quants are stored in that order, and each decode token's block gets -8 * its sum (xb), so that
// dot(x, nibble - 8) = dot(x, nibble) + xb needs neither a subtraction nor a widening of the weights.

/**
 * Written between the tokens of a prefill group (matmulQ, q4KGroup, q6KGroup) and between the sub-block pairs of a
 * q4_K decode block (matmul_q4_K), never read but by orderSink, which
 * keeps Binaryen from removing the writes. TurboFan keeps a function's memory loads in program order but schedules
 * arithmetic as late as it can, so without a write between them a group's loads for all 4 tokens (16 vectors for a
 * q8_0 block) were issued first and most of them spilled to the stack with 3 of the 4 accumulators
 * (`node scripts/wasm-disasm.mjs --dtype q8_0 --T 8`). A global.set of a token's result is effectful and needs that
 * result, so each token's arithmetic runs before the next token's loads: no vector spills left in the q8_0 / q4_0
 * loop; 5632 x 2048 at T = 64 went from 37 to 30-31.6 ms (q8_0), 39 to 32.3 ms (q4_0), 48-49.5 to 34.3-35 ms (q4_K)
 * and 50 to 48-49 ms (q6_K), and q4_K decode (T = 1) from 1.04-1.06 to 0.95-0.96 ms, with the same outputs bit for
 * bit. (The f16 tile and the q6_K decode loop gained nothing and have none.)
 */
let order: v128 = i32x4.splat(0)
export function orderSink (): i32 { return i32x4.extract_lane(order, 0) }

/** tokens per group in the widened activation layout */
const GROUP = 4

/** the 16 int8 lanes of v reordered as [0, 2, .., 14, 1, 3, .., 15] (the order of a nibble read as int16 lanes) */
@inline function evensOdds (v: v128): v128 {
  return i8x16.shuffle(v, v, 0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15)
}

/** the 32 int8 lanes of lo, hi sign-extended to int16 at dst (64 bytes) */
@inline function storeI16x32 (dst: usize, lo: v128, hi: v128): void {
  v128.store(dst, i16x8.extend_low_i8x16_s(lo))
  v128.store(dst, i16x8.extend_high_i8x16_s(lo), 16)
  v128.store(dst, i16x8.extend_low_i8x16_s(hi), 32)
  v128.store(dst, i16x8.extend_high_i8x16_s(hi), 48)
}

/** the sum of the 32 int8 lanes of lo, hi */
@inline function sumI8x32 (lo: v128, hi: v128): i32 {
  return isum(i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.extadd_pairwise_i8x16_s(lo), i16x8.extadd_pairwise_i8x16_s(hi))))
}

/**
 * int32x4 partial sums of the 16 low nibbles of the bytes of v, read as int16 lanes (v & 15: elements 0, 2, .., 14;
 * (v >> 8) & 15: 1, 3, .., 15), times 16 int16 activations at x in that order
 */
@inline function dotLowNibbles (v: v128, x: usize): v128 {
  const m = i16x8.splat(15)
  return i32x4.add(i32x4.dot_i16x8_s(v128.and(v, m), v128.load(x)), i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(v, 8), m), v128.load(x, 16)))
}

/** the same for the 16 high nibbles ((v >> 4) & 15: elements 0, 2, .., 14; v >> 12: 1, 3, .., 15) */
@inline function dotHighNibbles (v: v128, x: usize): v128 {
  return i32x4.add(i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(v, 4), i16x8.splat(15)), v128.load(x)), i32x4.dot_i16x8_s(i16x8.shr_u(v, 12), v128.load(x, 16)))
}

/**
 * Lays out a q8_0 activation (xq int8 [T, cols], xd f32 [T, cols/32]) for matmul_q8_0 (q4 = 0) or matmul_q4_0
 * (q4 = 1): int16 quants at xw and scales at xs (both grouped as above), and for q4_0 the decode tokens' block
 * biases at xb (i32x4 [T, cols/32], (-8 * block sum, 0, 0, 0)).
 */
export function widen_q8_0 (xq: usize, xd: usize, xw: usize, xs: usize, xb: usize, cols: i32, T: i32, q4: i32): void {
  const nb = cols >> 5
  for (let t = 0; t < T;) {
    const G = t + GROUP <= T ? GROUP : 1
    for (let j = 0; j < G; j++) {
      const tj = t + j
      for (let b = 0; b < nb; b++) {
        const src = xq + <usize>tj * cols + (<usize>b << 5)
        const dst = xw + ((<usize>t * cols + <usize>b * G * 32 + <usize>j * 32) << 1)
        store<f32>(xs + ((<usize>t * nb + <usize>b * G + j) << 2), load<f32>(xd + ((<usize>tj * nb + b) << 2)))
        const lo = v128.load(src)
        const hi = v128.load(src, 16)
        if (q4 != 0) storeI16x32(dst, evensOdds(lo), evensOdds(hi))
        else storeI16x32(dst, lo, hi)
        if (q4 != 0 && G == 1) {
          v128.store(xb + ((<usize>tj * nb + b) << 4), i32x4.replace_lane(i32x4.splat(0), 0, -8 * sumI8x32(lo, hi)))
        }
      }
    }
    t += G
  }
}

/** int32x4 partial sums of 32 int16 weights (w0..w3) times 32 int16 activations at x */
@inline function dotI16x32 (w0: v128, w1: v128, w2: v128, w3: v128, x: usize): v128 {
  return i32x4.add(i32x4.add(i32x4.dot_i16x8_s(w0, v128.load(x)), i32x4.dot_i16x8_s(w1, v128.load(x, 16))),
    i32x4.add(i32x4.dot_i16x8_s(w2, v128.load(x, 32)), i32x4.dot_i16x8_s(w3, v128.load(x, 48))))
}

/** [sum of the lanes of a, of b, of c, of d] (a 4x4 transpose and add) */
@inline function sum4x4 (a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(i32x4.shuffle(a, b, 0, 4, 1, 5), i32x4.shuffle(a, b, 2, 6, 3, 7))
  const cd = i32x4.add(i32x4.shuffle(c, d, 0, 4, 1, 5), i32x4.shuffle(c, d, 2, 6, 3, 7))
  return i32x4.add(i32x4.shuffle(ab, cd, 0, 1, 4, 5), i32x4.shuffle(ab, cd, 2, 3, 6, 7))
}

@inline function lutF16 (lut: usize, p: usize): f32 {
  return load<f32>(lut + (<usize>load<u16>(p) << 2))
}

/**
 * out[t, r] for rows [r0, r1): q8_0 weights (34-byte blocks: f16 d, 32 int8) or, with `q4`, q4_0 weights (18-byte
 * blocks: f16 d, 16 bytes of nibbles) against an activation laid out by widen_q8_0.
 */
@inline function matmulQ (q4: bool, w: usize, xw: usize, xs: usize, xb: usize, out: usize, rows: i32, cols: i32, T: i32, lut: usize, r0: i32, r1: i32): void {
  const nb = cols >> 5
  const blockBytes: usize = q4 ? 18 : 34
  const rowBytes = <usize>nb * blockBytes
  let t = 0
  // groups of 4 tokens (prefill): each weight block is widened to int16 once for the 4 activations
  for (; t + GROUP <= T; t += GROUP) {
    const xg = xw + (<usize>t * cols << 1)
    const sg = xs + (<usize>t * nb << 2)
    for (let r = r0; r < r1; r++) {
      let wp = w + <usize>r * rowBytes
      const end = wp + rowBytes
      let xp = xg
      let sp = sg
      let a0 = f32x4.splat(0)
      let a1 = f32x4.splat(0)
      let a2 = f32x4.splat(0)
      let a3 = f32x4.splat(0)
      for (; wp < end; wp += blockBytes, xp += 256, sp += 16) {
        let w0: v128
        let w1: v128
        let w2: v128
        let w3: v128
        if (q4) {
          const v = v128.load(wp, 2)
          const m = i16x8.splat(15)
          const eight = i16x8.splat(8)
          w0 = i16x8.sub(v128.and(v, m), eight)
          w1 = i16x8.sub(v128.and(i16x8.shr_u(v, 8), m), eight)
          w2 = i16x8.sub(v128.and(i16x8.shr_u(v, 4), m), eight)
          w3 = i16x8.sub(i16x8.shr_u(v, 12), eight)
        } else {
          w0 = v128.load8x8_s(wp, 2)
          w1 = v128.load8x8_s(wp, 10)
          w2 = v128.load8x8_s(wp, 18)
          w3 = v128.load8x8_s(wp, 26)
        }
        const sc = f32x4.mul(f32x4.splat(lutF16(lut, wp)), v128.load(sp))
        a0 = fmadd(f32x4.convert_i32x4_s(dotI16x32(w0, w1, w2, w3, xp)), i32x4.shuffle(sc, sc, 0, 0, 0, 0), a0)
        order = a0
        a1 = fmadd(f32x4.convert_i32x4_s(dotI16x32(w0, w1, w2, w3, xp + 64)), i32x4.shuffle(sc, sc, 1, 1, 1, 1), a1)
        order = a1
        a2 = fmadd(f32x4.convert_i32x4_s(dotI16x32(w0, w1, w2, w3, xp + 128)), i32x4.shuffle(sc, sc, 2, 2, 2, 2), a2)
        order = a2
        a3 = fmadd(f32x4.convert_i32x4_s(dotI16x32(w0, w1, w2, w3, xp + 192)), i32x4.shuffle(sc, sc, 3, 3, 3, 3), a3)
      }
      const po = out + ((<usize>t * rows + r) << 2)
      store<f32>(po, hsum(a0))
      store<f32>(po + (<usize>rows << 2), hsum(a1))
      store<f32>(po + (<usize>rows << 3), hsum(a2))
      store<f32>(po + (<usize>rows * 12), hsum(a3))
    }
  }
  // decode (and the tokens past the last group), one row at a time: two interleaved row streams read markedly
  // slower from DRAM here (measured)
  for (; t < T; t++) {
    const xt = xw + (<usize>t * cols << 1)
    const st = xs + (<usize>t * nb << 2)
    const bt = xb + (<usize>t * nb << 4)
    for (let r = r0; r < r1; r++) {
      let wp = w + <usize>r * rowBytes
      const end = wp + rowBytes
      let xp = xt
      let sp = st
      let bp = bt
      let acc = f32x4.splat(0)
      for (; wp < end; wp += blockBytes, xp += 64, sp += 4, bp += 16) {
        let s: v128
        if (q4) {
          const v = v128.load(wp, 2)
          s = i32x4.add(i32x4.add(dotLowNibbles(v, xp), dotHighNibbles(v, xp + 32)), v128.load(bp))
        } else {
          // each 8 quants loaded and sign-extended in one instruction (pmovsxbw from memory)
          const p0 = i32x4.dot_i16x8_s(v128.load8x8_s(wp, 2), v128.load(xp))
          const p1 = i32x4.dot_i16x8_s(v128.load8x8_s(wp, 10), v128.load(xp, 16))
          const p2 = i32x4.dot_i16x8_s(v128.load8x8_s(wp, 18), v128.load(xp, 32))
          const p3 = i32x4.dot_i16x8_s(v128.load8x8_s(wp, 26), v128.load(xp, 48))
          s = i32x4.add(i32x4.add(p0, p1), i32x4.add(p2, p3))
        }
        acc = fmadd(f32x4.convert_i32x4_s(s), f32x4.splat(lutF16(lut, wp) * load<f32>(sp)), acc)
      }
      store<f32>(out + ((<usize>t * rows + r) << 2), hsum(acc))
    }
  }
}

export function matmul_q8_0 (w: usize, xw: usize, xs: usize, xb: usize, out: usize, rows: i32, cols: i32, T: i32, lut: usize, r0: i32, r1: i32): void {
  matmulQ(false, w, xw, xs, xb, out, rows, cols, T, lut, r0, r1)
}

export function matmul_q4_0 (w: usize, xw: usize, xs: usize, xb: usize, out: usize, rows: i32, cols: i32, T: i32, lut: usize, r0: i32, r1: i32): void {
  matmulQ(true, w, xw, xs, xb, out, rows, cols, T, lut, r0, r1)
}

// ---- K-quants: activation as q8_K (int16 quants [T, cols], f32 d [T, cols/256]; for q4_K laid out by widen_q8_K) ----

@inline function isum (v: v128): i32 {
  return (i32x4.extract_lane(v, 0) + i32x4.extract_lane(v, 1)) + (i32x4.extract_lane(v, 2) + i32x4.extract_lane(v, 3))
}

// q4_K (144-byte blocks of 256: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins for 8 sub-blocks of 32, 128
// bytes of nibbles: each 32 bytes hold sub-block 2j in the low nibbles and 2j + 1 in the high ones). As with q4_0,
// the nibbles are taken straight into int16 lanes (lane & 15, (lane >> 8) & 15 for sub-block 2j; (lane >> 4) & 15,
// lane >> 12 for 2j + 1) against an activation whose 16-element groups widen_q8_K stores as [evens, odds]. The
// scales and mins are unpacked with llama.cpp's 32-bit masks into one vector; the mins term is one pmaddwd against
// the activation's per-32 sums.

/**
 * n int8 q8_K quants at src -> int16 at dst with each group of 16 stored as [0, 2, .., 14, 1, 3, .., 15], and
 * sums[n / 32] (int16) of each 32 quants
 */
export function widen_q8_K (src: usize, dst: usize, sums: usize, n: i32): void {
  for (let i = 0; i < n; i += 32) {
    const lo = v128.load(src + i)
    const hi = v128.load(src + i, 16)
    store<i16>(sums + (<usize>i >> 4), <i16>sumI8x32(lo, hi))
    storeI16x32(dst + (<usize>i << 1), evensOdds(lo), evensOdds(hi))
  }
}

/**
 * acc + the dots of one 32-byte nibble chunk at q with sub-blocks 2j (x) and 2j + 1 (x + 64), times their scales sa
 * and sb (f32x4 splats): in f32, which is exact (every partial sum stays below 2^24) and measured faster here than
 * i32x4.mul
 */
@inline function dotQ4KPair (q: usize, x: usize, sa: v128, sb: v128, acc: v128): v128 {
  const q0 = v128.load(q)
  const q1 = v128.load(q, 16)
  const a = i32x4.add(dotLowNibbles(q0, x), dotLowNibbles(q1, x + 32))
  const b = i32x4.add(dotHighNibbles(q0, x + 64), dotHighNibbles(q1, x + 96))
  return fmadd(f32x4.convert_i32x4_s(a), sa, fmadd(f32x4.convert_i32x4_s(b), sb, acc))
}

/** the 6-bit scales (lanes 0..7) and mins (lanes 8..15) of a q4_K block at p, unpacked with llama.cpp's masks */
@inline function q4KScalesMins (p: usize): v128 {
  const u0 = load<u32>(p, 4)
  const u1 = load<u32>(p, 8)
  const u2 = load<u32>(p, 12)
  let sm = i32x4.splat(u0 & 0x3f3f3f3f)
  sm = i32x4.replace_lane(sm, 1, (u2 & 0x0f0f0f0f) | (((u0 >> 6) & 0x03030303) << 4))
  sm = i32x4.replace_lane(sm, 2, u1 & 0x3f3f3f3f)
  return i32x4.replace_lane(sm, 3, ((u2 >> 4) & 0x0f0f0f0f) | (((u1 >> 6) & 0x03030303) << 4))
}

/**
 * Rows [r0, r1) of tokens [t, t + 4) (prefill): each q4_K block's nibbles are taken into int16 lanes once and
 * multiplied there by their sub-block's 6-bit scale (at most 15 * 63), then dotted with the 4 tokens' activations,
 * so a block's sum is one exact int32 per token (at most 64 products of 945 * 128 per lane) scaled once.
 */
function q4KGroup (w: usize, xw: usize, xd: usize, xs: usize, out: usize, rows: i32, cols: i32, t: i32, lut: usize, r0: i32, r1: i32): void {
  const nb = cols >> 8
  const rowBytes = <usize>nb * 144
  const xStride = <usize>cols << 1
  const x0 = xw + <usize>t * xStride
  const m = i16x8.splat(15)
  for (let r = r0; r < r1; r++) {
    let p = w + <usize>r * rowBytes
    const end = p + rowBytes
    let xp = x0
    // per block: the 4 tokens' scales (xd) and int16 sums per 32 (xs) at token stride nb * 4 and nb * 16 bytes
    let dp = xd + (<usize>t * nb << 2)
    let sp = xs + (<usize>t * nb << 4)
    const dStride = <usize>nb << 2
    const sStride = <usize>nb << 4
    let a0 = f32x4.splat(0)
    let a1 = f32x4.splat(0)
    let a2 = f32x4.splat(0)
    let a3 = f32x4.splat(0)
    for (; p < end; p += 144, xp += 512, dp += 4, sp += 16) {
      const sm = q4KScalesMins(p)
      const sc = i16x8.extend_low_i8x16_u(sm)
      const mn = i16x8.extend_high_i8x16_u(sm)
      let s0 = i32x4.splat(0)
      let s1 = i32x4.splat(0)
      let s2 = i32x4.splat(0)
      let s3 = i32x4.splat(0)
      for (let k: usize = 0; k < 4; k++) {
        const q0 = v128.load(p + 16 + (k << 5))
        const q1 = v128.load(p + 32 + (k << 5))
        const xk = xp + (k << 7)
        // sub-block 2k: the low nibbles, times its scale
        // the scale of sub-block j in every lane: bytes 2j, 2j + 1 of sc, swizzled
        let sA = i8x16.swizzle(sc, i16x8.splat(<i16>((k << 2) | (((k << 2) + 1) << 8))))
        let w0 = i16x8.mul(v128.and(q0, m), sA)
        let w1 = i16x8.mul(v128.and(i16x8.shr_u(q0, 8), m), sA)
        let w2 = i16x8.mul(v128.and(q1, m), sA)
        let w3 = i16x8.mul(v128.and(i16x8.shr_u(q1, 8), m), sA)
        s0 = i32x4.add(s0, dotI16x32(w0, w1, w2, w3, xk))
        order = s0
        s1 = i32x4.add(s1, dotI16x32(w0, w1, w2, w3, xk + xStride))
        order = s1
        s2 = i32x4.add(s2, dotI16x32(w0, w1, w2, w3, xk + 2 * xStride))
        order = s2
        s3 = i32x4.add(s3, dotI16x32(w0, w1, w2, w3, xk + 3 * xStride))
        order = s3
        // sub-block 2k + 1: the high nibbles
        sA = i8x16.swizzle(sc, i16x8.splat(<i16>(((k << 2) + 2) | (((k << 2) + 3) << 8))))
        w0 = i16x8.mul(v128.and(i16x8.shr_u(q0, 4), m), sA)
        w1 = i16x8.mul(i16x8.shr_u(q0, 12), sA)
        w2 = i16x8.mul(v128.and(i16x8.shr_u(q1, 4), m), sA)
        w3 = i16x8.mul(i16x8.shr_u(q1, 12), sA)
        s0 = i32x4.add(s0, dotI16x32(w0, w1, w2, w3, xk + 64))
        order = s0
        s1 = i32x4.add(s1, dotI16x32(w0, w1, w2, w3, xk + 64 + xStride))
        order = s1
        s2 = i32x4.add(s2, dotI16x32(w0, w1, w2, w3, xk + 64 + 2 * xStride))
        order = s2
        s3 = i32x4.add(s3, dotI16x32(w0, w1, w2, w3, xk + 64 + 3 * xStride))
        order = s3
      }
      const dw = lutF16(lut, p)
      const dm = lutF16(lut, p + 2)
      a0 = q4KScale(a0, s0, mn, dp, sp, dw, dm)
      a1 = q4KScale(a1, s1, mn, dp + dStride, sp + sStride, dw, dm)
      a2 = q4KScale(a2, s2, mn, dp + 2 * dStride, sp + 2 * sStride, dw, dm)
      a3 = q4KScale(a3, s3, mn, dp + 3 * dStride, sp + 3 * sStride, dw, dm)
    }
    const po = out + ((<usize>t * rows + r) << 2)
    store<f32>(po, hsum(a0))
    store<f32>(po + (<usize>rows << 2), hsum(a1))
    store<f32>(po + (<usize>rows << 3), hsum(a2))
    store<f32>(po + (<usize>rows * 12), hsum(a3))
  }
}

/** acc + one token's q4_K block: its scaled sum s times d * dx, less its mins (mn . sums at sp) times dmin * dx */
@inline function q4KScale (acc: v128, s: v128, mn: v128, dp: usize, sp: usize, dw: f32, dm: f32): v128 {
  const dx = load<f32>(dp)
  const mins = i32x4.dot_i16x8_s(mn, v128.load(sp))
  return fmadd(f32x4.convert_i32x4_s(mins), f32x4.splat(-dm * dx), fmadd(f32x4.convert_i32x4_s(s), f32x4.splat(dw * dx), acc))
}

/**
 * out[t, r] for rows [r0, r1): q4_K weights against a q8_K activation laid out by widen_q8_K (xw int16 [T, cols],
 * xs int16 [T, cols/32]) with its scales (xd f32 [T, cols/256])
 */
export function matmul_q4_K (w: usize, xw: usize, xd: usize, xs: usize, out: usize, rows: i32, cols: i32, T: i32, lut: usize, r0: i32, r1: i32): void {
  const nb = cols >> 8
  const rowBytes = <usize>nb * 144
  let t = 0
  for (; t + GROUP <= T; t += GROUP) q4KGroup(w, xw, xd, xs, out, rows, cols, t, lut, r0, r1)
  for (; t < T; t++) {
    const xt = xw + (<usize>t * cols << 1)
    const dt = xd + (<usize>t * nb << 2)
    const st = xs + (<usize>t * nb << 4)
    for (let r = r0; r < r1; r++) {
      let p = w + <usize>r * rowBytes
      const end = p + rowBytes
      let xp = xt
      let dp = dt
      let sp = st
      let accD = f32x4.splat(0)
      let accM = f32x4.splat(0)
      for (; p < end; p += 144, xp += 512, dp += 4, sp += 16) {
        const sm = q4KScalesMins(p)
        const sc = i16x8.extend_low_i8x16_u(sm) // scales 0..7
        const lo = f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(sc))
        const hi = f32x4.convert_i32x4_u(i32x4.extend_high_i16x8_u(sc))
        const mins = i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(sm), v128.load(sp))
        let acc = dotQ4KPair(p + 16, xp, i32x4.shuffle(lo, lo, 0, 0, 0, 0), i32x4.shuffle(lo, lo, 1, 1, 1, 1), f32x4.splat(0))
        order = acc
        acc = dotQ4KPair(p + 48, xp + 128, i32x4.shuffle(lo, lo, 2, 2, 2, 2), i32x4.shuffle(lo, lo, 3, 3, 3, 3), acc)
        order = acc
        acc = dotQ4KPair(p + 80, xp + 256, i32x4.shuffle(hi, hi, 0, 0, 0, 0), i32x4.shuffle(hi, hi, 1, 1, 1, 1), acc)
        order = acc
        acc = dotQ4KPair(p + 112, xp + 384, i32x4.shuffle(hi, hi, 2, 2, 2, 2), i32x4.shuffle(hi, hi, 3, 3, 3, 3), acc)
        const dx = load<f32>(dp)
        accD = fmadd(acc, f32x4.splat(lutF16(lut, p) * dx), accD)
        accM = fmadd(f32x4.convert_i32x4_s(mins), f32x4.splat(lutF16(lut, p + 2) * dx), accM)
      }
      store<f32>(out + ((<usize>t * rows + r) << 2), hsum(accD) - hsum(accM))
    }
  }
}

/**
 * Group k (0..3, a constant) of the 64 values of a q6_K chunk: their low 4 bits in la (k = 0, 2) or lb (k = 1, 3),
 * low or high nibbles, their high 2 bits at bits 2k of h; as int8, less 32
 */
@inline function q6Group (la: v128, lb: v128, h: v128, k: i32): v128 {
  const m4 = i8x16.splat(0x0f)
  const low = k == 0 ? v128.and(la, m4) : k == 1 ? v128.and(lb, m4) : k == 2 ? i8x16.shr_u(la, 4) : i8x16.shr_u(lb, 4)
  const high = k == 3 ? i8x16.shr_u(h, 6) : v128.and(k == 0 ? h : i8x16.shr_u(h, <u32>(2 * k)), i8x16.splat(3))
  return i8x16.sub(v128.or(low, i8x16.shl(high, 4)), i8x16.splat(32))
}

/** int32x4 partial sums of 16 int16 weights (lo, hi) times 16 int16 activations at x */
@inline function dot16 (lo: v128, hi: v128, x: usize): v128 {
  return i32x4.add(i32x4.dot_i16x8_s(lo, v128.load(x)), i32x4.dot_i16x8_s(hi, v128.load(x, 16)))
}

/** the 16 int8 lanes of q widened to int16 and multiplied by the int8 scale at sc (at most 32 * 128): low and high 8 */
@inline function scaledLow (q: v128, sc: usize): v128 {
  return i16x8.mul(i16x8.extend_low_i8x16_s(q), i16x8.splat(<i16>load<i8>(sc)))
}
@inline function scaledHigh (q: v128, sc: usize): v128 {
  return i16x8.mul(i16x8.extend_high_i8x16_s(q), i16x8.splat(<i16>load<i8>(sc)))
}

/**
 * Rows [r0, r1) of tokens [t, t + 4) (prefill) of matmul_q6_K: each 16-weight group is unpacked and multiplied by
 * its int8 scale in int16 once (at most 32 * 128 = 4096), then dotted with the 4 tokens' activations; a block's sum is
 * one exact int32 per token (64 products of at most 4096 * 128 per lane), scaled once.
 */
function q6KGroup (w: usize, xq: usize, xd: usize, out: usize, rows: i32, cols: i32, t: i32, r0: i32, r1: i32): void {
  const nb = cols >> 8
  const rowBytes = <usize>nb * 210
  const xStride = <usize>cols << 1
  const dStride = <usize>nb << 2
  const x0 = xq + <usize>t * xStride
  const d0 = xd + <usize>t * dStride
  for (let r = r0; r < r1; r++) {
    const row = w + <usize>r * rowBytes
    let a0 = f32x4.splat(0)
    for (let b = 0; b < nb; b++) {
      const p = row + <usize>b * 210
      let ql = p
      let qh = p + 128
      let sc = p + 192
      let xa = x0 + (<usize>b << 9)
      let s0 = i32x4.splat(0)
      let s1 = i32x4.splat(0)
      let s2 = i32x4.splat(0)
      let s3 = i32x4.splat(0)
      for (let half = 0; half < 2; half++) {
        for (let g = 0; g < 2; g++) {
          const o = <usize>g << 4
          const la = v128.load(ql + o)
          const lb = v128.load(ql + 32 + o)
          const h = v128.load(qh + o)
          const xo = xa + (o << 1)
          // each of the 4 groups of 16: its 6-bit values (- 32), scaled, against the 4 tokens
          let q = q6Group(la, lb, h, 0)
          let lo = scaledLow(q, sc + g)
          let hi = scaledHigh(q, sc + g)
          s0 = i32x4.add(s0, dot16(lo, hi, xo))
          order = s0
          s1 = i32x4.add(s1, dot16(lo, hi, xo + xStride))
          order = s1
          s2 = i32x4.add(s2, dot16(lo, hi, xo + 2 * xStride))
          order = s2
          s3 = i32x4.add(s3, dot16(lo, hi, xo + 3 * xStride))
          order = s3
          q = q6Group(la, lb, h, 1)
          lo = scaledLow(q, sc + g + 2)
          hi = scaledHigh(q, sc + g + 2)
          s0 = i32x4.add(s0, dot16(lo, hi, xo + 64))
          order = s0
          s1 = i32x4.add(s1, dot16(lo, hi, xo + 64 + xStride))
          order = s1
          s2 = i32x4.add(s2, dot16(lo, hi, xo + 64 + 2 * xStride))
          order = s2
          s3 = i32x4.add(s3, dot16(lo, hi, xo + 64 + 3 * xStride))
          order = s3
          q = q6Group(la, lb, h, 2)
          lo = scaledLow(q, sc + g + 4)
          hi = scaledHigh(q, sc + g + 4)
          s0 = i32x4.add(s0, dot16(lo, hi, xo + 128))
          order = s0
          s1 = i32x4.add(s1, dot16(lo, hi, xo + 128 + xStride))
          order = s1
          s2 = i32x4.add(s2, dot16(lo, hi, xo + 128 + 2 * xStride))
          order = s2
          s3 = i32x4.add(s3, dot16(lo, hi, xo + 128 + 3 * xStride))
          order = s3
          q = q6Group(la, lb, h, 3)
          lo = scaledLow(q, sc + g + 6)
          hi = scaledHigh(q, sc + g + 6)
          s0 = i32x4.add(s0, dot16(lo, hi, xo + 192))
          order = s0
          s1 = i32x4.add(s1, dot16(lo, hi, xo + 192 + xStride))
          order = s1
          s2 = i32x4.add(s2, dot16(lo, hi, xo + 192 + 2 * xStride))
          order = s2
          s3 = i32x4.add(s3, dot16(lo, hi, xo + 192 + 3 * xStride))
          order = s3
        }
        xa += 256
        ql += 64
        qh += 32
        sc += 8
      }
      // lane j: token t + j; the block's d times each token's activation scale
      const dx = f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(load<f32>(d0 + (<usize>b << 2))),
        1, load<f32>(d0 + dStride + (<usize>b << 2))), 2, load<f32>(d0 + 2 * dStride + (<usize>b << 2))), 3, load<f32>(d0 + 3 * dStride + (<usize>b << 2)))
      a0 = fmadd(f32x4.convert_i32x4_s(sum4x4(s0, s1, s2, s3)), f32x4.mul(f32x4.splat(f16ToF32(load<u16>(p + 208))), dx), a0)
    }
    const po = out + ((<usize>t * rows + r) << 2)
    store<f32>(po, f32x4.extract_lane(a0, 0))
    store<f32>(po + (<usize>rows << 2), f32x4.extract_lane(a0, 1))
    store<f32>(po + (<usize>rows << 3), f32x4.extract_lane(a0, 2))
    store<f32>(po + (<usize>rows * 12), f32x4.extract_lane(a0, 3))
  }
}

export function matmul_q6_K (w: usize, xq: usize, xd: usize, out: usize, rows: i32, cols: i32, T: i32, r0: i32, r1: i32): void {
  const nb = cols >> 8
  const rowBytes = <usize>nb * 210
  let t = 0
  for (; t + GROUP <= T; t += GROUP) q6KGroup(w, xq, xd, out, rows, cols, t, r0, r1)
  for (; t < T; t++) {
    const xt = xq + ((<usize>t * cols) << 1)
    const dt = xd + ((<usize>t * nb) << 2)
    for (let r = r0; r < r1; r++) {
      const row = w + <usize>r * rowBytes
      let sum: f32 = 0
      for (let b = 0; b < nb; b++) {
        const p = row + <usize>b * 210
        let ql = p
        let qh = p + 128
        let sc = p + 192
        let xa = xt + (<usize>b << 9)
        let acc = i32x4.splat(0)
        for (let half = 0; half < 2; half++) {
          for (let g = 0; g < 2; g++) {
            const o = <usize>g << 4
            const la = v128.load(ql + o)
            const lb = v128.load(ql + 32 + o)
            const h = v128.load(qh + o)
            const q1 = q6Group(la, lb, h, 0)
            const q2 = q6Group(la, lb, h, 1)
            const q3 = q6Group(la, lb, h, 2)
            const q4 = q6Group(la, lb, h, 3)
            const xo = xa + (o << 1)
            const s1 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(q1), v128.load(xo)), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(q1), v128.load(xo, 16)))
            const s2 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(q2), v128.load(xo, 64)), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(q2), v128.load(xo, 80)))
            const s3 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(q3), v128.load(xo, 128)), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(q3), v128.load(xo, 144)))
            const s4 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(q4), v128.load(xo, 192)), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(q4), v128.load(xo, 208)))
            acc = i32x4.add(acc, i32x4.mul(s1, i32x4.splat(<i32>load<i8>(sc + g))))
            acc = i32x4.add(acc, i32x4.mul(s2, i32x4.splat(<i32>load<i8>(sc + g + 2))))
            acc = i32x4.add(acc, i32x4.mul(s3, i32x4.splat(<i32>load<i8>(sc + g + 4))))
            acc = i32x4.add(acc, i32x4.mul(s4, i32x4.splat(<i32>load<i8>(sc + g + 6))))
          }
          xa += 256
          ql += 64
          qh += 32
          sc += 8
        }
        sum += (f16ToF32(load<u16>(p + 208)) * load<f32>(dt + (<usize>b << 2))) * <f32>isum(acc)
      }
      store<f32>(out + ((<usize>t * rows + r) << 2), sum)
    }
  }
}

// ---- bias ----

/** out[t, r] += bias[r] for r in [r0, r1) */
export function add_bias (out: usize, bias: usize, rows: i32, T: i32, r0: i32, r1: i32): void {
  for (let t = 0; t < T; t++) {
    const o = out + ((<usize>t * rows) << 2)
    for (let r = r0; r < r1; r++) {
      const a = o + (<usize>r << 2)
      store<f32>(a, load<f32>(a) + load<f32>(bias + (<usize>r << 2)))
    }
  }
}

// ---- elementwise and norms ----

/** out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * weight for T rows of dim; sum of squares in f64 lanes */
export function rms_norm (out: usize, x: usize, weight: usize, T: i32, dim: i32, eps: f64): void {
  for (let t = 0; t < T; t++) {
    const xr = x + ((<usize>t * dim) << 2)
    const orow = out + ((<usize>t * dim) << 2)
    let acc = f64x2.splat(0)
    let i = 0
    for (; i + 4 <= dim; i += 4) {
      const v = v128.load(xr + (<usize>i << 2))
      const lo = f64x2.promote_low_f32x4(v)
      const hi = f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1))
      acc = f64x2.add(acc, f64x2.add(f64x2.mul(lo, lo), f64x2.mul(hi, hi)))
    }
    let ss = f64x2.extract_lane(acc, 0) + f64x2.extract_lane(acc, 1)
    for (; i < dim; i++) {
      const v = <f64>load<f32>(xr + (<usize>i << 2))
      ss += v * v
    }
    const scale = <f32>(1 / Math.sqrt(ss / dim + eps))
    const sv = f32x4.splat(scale)
    i = 0
    for (; i + 4 <= dim; i += 4) {
      const o = <usize>i << 2
      v128.store(orow + o, f32x4.mul(f32x4.mul(v128.load(xr + o), sv), v128.load(weight + o)))
    }
    for (; i < dim; i++) {
      const o = <usize>i << 2
      store<f32>(orow + o, (load<f32>(xr + o) * scale) * load<f32>(weight + o))
    }
  }
}

/**
 * Rotates each head of x[T, nHeads * headDim] in place by position startPos + t; invFreqs: headDim/2 f64.
 * style 0 = adjacent pairs (2j, 2j+1), 1 = halves (j, j + headDim/2). cs: scratch for headDim f32 (cos, sin).
 */
export function rope (x: usize, T: i32, nHeads: i32, headDim: i32, startPos: i32, invFreqs: usize, style: i32, cs: usize): void {
  const half = headDim >> 1
  for (let t = 0; t < T; t++) {
    const pos = <f64>(startPos + t)
    for (let j = 0; j < half; j++) {
      const angle = pos * load<f64>(invFreqs + (<usize>j << 3))
      store<f32>(cs + (<usize>j << 2), <f32>Math.cos(angle))
      store<f32>(cs + (<usize>(half + j) << 2), <f32>Math.sin(angle))
    }
    for (let h = 0; h < nHeads; h++) {
      const base = x + ((<usize>(t * nHeads + h) * headDim) << 2)
      if (style == 0) {
        for (let j = 0; j < half; j++) {
          const c = load<f32>(cs + (<usize>j << 2))
          const s = load<f32>(cs + (<usize>(half + j) << 2))
          const p = base + (<usize>j << 3)
          const a = load<f32>(p)
          const b = load<f32>(p, 4)
          store<f32>(p, a * c - b * s)
          store<f32>(p, a * s + b * c, 4)
        }
      } else {
        let j = 0
        const hb = base + (<usize>half << 2)
        for (; j + 4 <= half; j += 4) {
          const o = <usize>j << 2
          const c = v128.load(cs + o)
          const s = v128.load(cs + (<usize>half << 2) + o)
          const a = v128.load(base + o)
          const b = v128.load(hb + o)
          v128.store(base + o, f32x4.sub(f32x4.mul(a, c), f32x4.mul(b, s)))
          v128.store(hb + o, f32x4.add(f32x4.mul(a, s), f32x4.mul(b, c)))
        }
        for (; j < half; j++) {
          const o = <usize>j << 2
          const c = load<f32>(cs + o)
          const s = load<f32>(cs + (<usize>half << 2) + o)
          const a = load<f32>(base + o)
          const b = load<f32>(hb + o)
          store<f32>(base + o, a * c - b * s)
          store<f32>(hb + o, a * s + b * c)
        }
      }
    }
  }
}

/**
 * Causal attention for query heads [h0, h1) of T tokens at positions startPos..; q/out [T, nHeads*headDim],
 * k/v [>= startPos+T, nKvHeads*headDim]; scoresBase: scratch of nHeads * (startPos+T) f32 (the slice at h0 is this
 * call's own, so threads with disjoint head ranges never share it).
 * Max-subtracted softmax; GQA head h reads kv head h / (nHeads / nKvHeads).
 */
export function attention (out: usize, q: usize, k: usize, v: usize, T: i32, startPos: i32, nHeads: i32, nKvHeads: i32,
  headDim: i32, scoresBase: usize, h0: i32, h1: i32): void {
  const scores = scoresBase + ((<usize>h0 * <usize>(startPos + T)) << 2)
  const group = nHeads / nKvHeads
  const kvStride = <usize>(nKvHeads * headDim) << 2
  const scale = <f32>(1 / Math.sqrt(<f64>headDim))
  for (let t = 0; t < T; t++) {
    const nKeys = startPos + t + 1
    for (let h = h0; h < h1; h++) {
      const qb = q + ((<usize>(t * nHeads + h) * headDim) << 2)
      const kvOff = (<usize>((h / group) * headDim)) << 2
      let max = -Infinity
      for (let s = 0; s < nKeys; s++) {
        const sc = dotF32(qb, k + <usize>s * kvStride + kvOff, headDim) * scale
        store<f32>(scores + (<usize>s << 2), sc)
        if (sc > max) max = sc
      }
      let sum: f32 = 0
      for (let s = 0; s < nKeys; s++) {
        const e = Mathf.exp(load<f32>(scores + (<usize>s << 2)) - <f32>max)
        store<f32>(scores + (<usize>s << 2), e)
        sum += e
      }
      const ob = out + ((<usize>(t * nHeads + h) * headDim) << 2)
      const inv = <f32>1 / sum
      let i = 0
      for (; i + 4 <= headDim; i += 4) {
        let acc = f32x4.splat(0)
        const vo = v + kvOff + (<usize>i << 2)
        for (let s = 0; s < nKeys; s++) {
          acc = fmadd(f32x4.splat(load<f32>(scores + (<usize>s << 2))), v128.load(vo + <usize>s * kvStride), acc)
        }
        v128.store(ob + (<usize>i << 2), f32x4.mul(acc, f32x4.splat(inv)))
      }
      for (; i < headDim; i++) {
        let acc: f32 = 0
        const vo = v + kvOff + (<usize>i << 2)
        for (let s = 0; s < nKeys; s++) acc += load<f32>(scores + (<usize>s << 2)) * load<f32>(vo + <usize>s * kvStride)
        store<f32>(ob + (<usize>i << 2), acc * inv)
      }
    }
  }
}

/** out = silu(gate) * up over n */
export function swiglu (out: usize, gate: usize, up: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 2
    const g = load<f32>(gate + o)
    store<f32>(out + o, (g / (<f32>1 + Mathf.exp(-g))) * load<f32>(up + o))
  }
}

/** out = a + b over n */
export function add (out: usize, a: usize, b: usize, n: i32): void {
  let i = 0
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2
    v128.store(out + o, f32x4.add(v128.load(a + o), v128.load(b + o)))
  }
  for (; i < n; i++) {
    const o = <usize>i << 2
    store<f32>(out + o, load<f32>(a + o) + load<f32>(b + o))
  }
}

/** streaming read of `bytes` (multiple of 64) at p, for the memory-bandwidth figure; returns a checksum */
export function stream_read (p: usize, bytes: usize): f32 {
  let a0 = f32x4.splat(0)
  let a1 = f32x4.splat(0)
  let a2 = f32x4.splat(0)
  let a3 = f32x4.splat(0)
  const end = p + bytes
  for (; p < end; p += 64) {
    a0 = f32x4.add(a0, v128.load(p))
    a1 = f32x4.add(a1, v128.load(p, 16))
    a2 = f32x4.add(a2, v128.load(p, 32))
    a3 = f32x4.add(a3, v128.load(p, 48))
  }
  return hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)))
}

/** stream_read over chunks [c0, c1) of `chunk` bytes from p (threads split the chunk range) */
export function stream_read_chunks (p: usize, chunk: i32, c0: i32, c1: i32): f32 {
  return stream_read(p + <usize>c0 * <usize>chunk, <usize>(c1 - c0) * <usize>chunk)
}
