/**
 * Reference K-quant quantizers, ports of ggml's quantize_row_q4_K_ref / quantize_row_q6_K_ref (and their helpers
 * make_qkx2_quants / make_qx_quants) with every float operation rounded to f32 as the C code does, so the bytes
 * match llama.cpp's quantizer run without an importance matrix.
 */
import { QuantLayoutError } from './errors.js'
import { QK_K } from './dtypes.js'
import * as half from './half.js'
import * as ops from './float-ops.js'
import * as deq from './dequantize.js'

// Module-local bindings for the hot loops (transpilers such as vitest's turn imported names into property reads).
const { F16_TO_F32, f32ToF16 } = half
const nearestInt = ops.nearestInt
const getScaleMinK4 = deq.getScaleMinK4
const f = Math.fround

const GROUP_MAX_EPS = f(1e-15)
const F_0_1 = f(0.1)

// Scratch buffers reused across calls (the module is single-threaded per worker).
const L = new Uint8Array(QK_K)
const L8 = new Int8Array(QK_K)
const Laux = new Uint8Array(32)
const weights = new Float32Array(32)
const scales = new Float32Array(QK_K / 16)
const mins = new Float32Array(QK_K / 32)
const theMin = new Float32Array(1)

/**
 * make_qkx2_quants: affine quantization of n values to 0..nmax with a weighted search over scales.
 * Writes the levels to L[lOff..], the (positive) min to theMin[0], returns the scale.
 */
function makeQkx2Quants (n: number, nmax: number, x: Float32Array, xo: number, w: Float32Array, lOff: number,
  rmin: number, rdelta: number, nstep: number, useMad: boolean): number {
  let min = x[xo]
  let max = x[xo]
  let sumW = w[0]
  let sumX = f(sumW * x[xo])
  for (let i = 1; i < n; i++) {
    const xi = x[xo + i]
    if (xi < min) min = xi
    if (xi > max) max = xi
    sumW = f(sumW + w[i])
    sumX = f(sumX + f(w[i] * xi))
  }
  if (min > 0) min = 0
  if (max === min) {
    L.fill(0, lOff, lOff + n)
    theMin[0] = -min
    return 0
  }
  let iscale = f(nmax / f(max - min))
  let scale = f(1 / iscale)
  let bestError = 0
  for (let i = 0; i < n; i++) {
    const l = Math.max(0, Math.min(nmax, nearestInt(f(iscale * f(x[xo + i] - min)))))
    L[lOff + i] = l
    let diff = f(f(f(scale * l) + min) - x[xo + i])
    diff = useMad ? Math.abs(diff) : f(diff * diff)
    bestError = f(bestError + f(w[i] * diff))
  }
  if (nstep < 1) {
    theMin[0] = -min
    return scale
  }
  for (let is = 0; is <= nstep; is++) {
    iscale = f(f(f(rmin + f(rdelta * is)) + nmax) / f(max - min))
    let sumL = 0
    let sumL2 = 0
    let sumXL = 0
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i]
      const l = Math.max(0, Math.min(nmax, nearestInt(f(iscale * f(xi - min)))))
      Laux[i] = l
      const wl = f(w[i] * l)
      sumL = f(sumL + wl)
      sumL2 = f(sumL2 + f(wl * l))
      sumXL = f(sumXL + f(wl * xi))
    }
    const D = f(f(sumW * sumL2) - f(sumL * sumL))
    if (D > 0) {
      let thisScale = f(f(f(sumW * sumXL) - f(sumX * sumL)) / D)
      let thisMin = f(f(f(sumL2 * sumX) - f(sumL * sumXL)) / D)
      if (thisMin > 0) {
        thisMin = 0
        thisScale = f(sumXL / sumL2)
      }
      let curError = 0
      for (let i = 0; i < n; i++) {
        let diff = f(f(f(thisScale * Laux[i]) + thisMin) - x[xo + i])
        diff = useMad ? Math.abs(diff) : f(diff * diff)
        curError = f(curError + f(w[i] * diff))
      }
      if (curError < bestError) {
        for (let i = 0; i < n; i++) L[lOff + i] = Laux[i]
        bestError = curError
        scale = thisScale
        min = thisMin
      }
    }
  }
  theMin[0] = -min
  return scale
}

/**
 * make_qx_quants with rmse_type 1 and no importance weights (weights x^2): symmetric quantization of n values to
 * -nmax..nmax-1, stored offset by nmax in L8[lOff..]; returns the scale.
 */
function makeQxQuants (n: number, nmax: number, x: Float32Array, xo: number, lOff: number): number {
  let max = 0
  let amax = 0
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[xo + i])
    if (ax > amax) {
      amax = ax
      max = x[xo + i]
    }
  }
  if (amax < GROUP_MAX_EPS) {
    L8.fill(0, lOff, lOff + n)
    return 0
  }
  let iscale = f(-nmax / max)
  let sumlx = 0
  let suml2 = 0
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i]
    const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(iscale * xi))))
    L8[lOff + i] = l + nmax
    const w = f(xi * xi)
    sumlx = f(sumlx + f(f(w * xi) * l))
    suml2 = f(suml2 + f(f(w * l) * l))
  }
  let scale = suml2 !== 0 ? f(sumlx / suml2) : 0
  let best = f(scale * sumlx)
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue
    iscale = f(-f(nmax + f(F_0_1 * is)) / max)
    sumlx = 0
    suml2 = 0
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i]
      const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(iscale * xi))))
      const w = f(xi * xi)
      sumlx = f(sumlx + f(f(w * xi) * l))
      suml2 = f(suml2 + f(f(w * l) * l))
    }
    if (suml2 > 0 && f(sumlx * sumlx) > f(best * suml2)) {
      for (let i = 0; i < n; i++) {
        L8[lOff + i] = nmax + Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(iscale * x[xo + i]))))
      }
      scale = f(sumlx / suml2)
      best = f(scale * sumlx)
    }
  }
  return scale
}

/** quantize_row_q4_K_ref: 256-element super-blocks of 8 sub-blocks, 6-bit scales and mins, 4-bit levels. */
export function quantizeRowQ4K (src: Float32Array, off: number, n: number, dst: Uint8Array, p: number): void {
  if (n % QK_K !== 0) throw new QuantLayoutError(`q4_K rows need a multiple of ${QK_K} elements, got ${n}`)
  for (let b = 0; b < n; b += QK_K, p += 144) {
    const x = off + b
    let maxScale = 0
    let maxMin = 0
    for (let j = 0; j < 8; j++) {
      let sumX2 = 0
      for (let l = 0; l < 32; l++) sumX2 = f(sumX2 + f(src[x + 32 * j + l] * src[x + 32 * j + l]))
      const avX = f(Math.sqrt(f(sumX2 / 32)))
      for (let l = 0; l < 32; l++) weights[l] = f(avX + Math.abs(src[x + 32 * j + l]))
      scales[j] = makeQkx2Quants(32, 15, src, x + 32 * j, weights, 32 * j, -1, F_0_1, 20, false)
      mins[j] = theMin[0]
      if (scales[j] > maxScale) maxScale = scales[j]
      if (mins[j] > maxMin) maxMin = mins[j]
    }
    const invScale = maxScale > 0 ? f(63 / maxScale) : 0
    const invMin = maxMin > 0 ? f(63 / maxMin) : 0
    const sc = p + 4
    for (let j = 0; j < 8; j++) {
      // uint8_t ls = nearest_int(...): wraps to a byte, then MIN(63, .)
      const ls = Math.min(63, nearestInt(f(invScale * scales[j])) & 0xff)
      const lm = Math.min(63, nearestInt(f(invMin * mins[j])) & 0xff)
      if (j < 4) {
        dst[sc + j] = ls
        dst[sc + j + 4] = lm
      } else {
        dst[sc + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4)
        dst[sc + j - 4] |= (ls >> 4) << 6
        dst[sc + j] |= (lm >> 4) << 6
      }
    }
    const dBits = f32ToF16(f(maxScale / 63))
    const dminBits = f32ToF16(f(maxMin / 63))
    dst[p] = dBits & 0xff
    dst[p + 1] = dBits >>> 8
    dst[p + 2] = dminBits & 0xff
    dst[p + 3] = dminBits >>> 8
    const dAll = F16_TO_F32[dBits]
    const dminAll = F16_TO_F32[dminBits]
    for (let j = 0; j < 8; j++) {
      const sm = getScaleMinK4(j, dst, sc)
      const d = f(dAll * (sm & 0xff))
      if (d === 0) continue
      const dm = f(dminAll * (sm >> 8))
      for (let ii = 0; ii < 32; ii++) {
        const l = nearestInt(f(f(src[x + 32 * j + ii] + dm) / d))
        L[32 * j + ii] = Math.max(0, Math.min(15, l))
      }
    }
    let q = p + 16
    for (let j = 0; j < QK_K; j += 64) {
      for (let l = 0; l < 32; l++) dst[q + l] = L[j + l] | (L[j + l + 32] << 4)
      q += 32
    }
  }
}

/** quantize_row_q6_K_ref: 256-element super-blocks of 16 sub-blocks, int8 scales, 6-bit levels. */
export function quantizeRowQ6K (src: Float32Array, off: number, n: number, dst: Uint8Array, p: number): void {
  if (n % QK_K !== 0) throw new QuantLayoutError(`q6_K rows need a multiple of ${QK_K} elements, got ${n}`)
  for (let b = 0; b < n; b += QK_K, p += 210) {
    const x = off + b
    let maxScale = 0
    let maxAbsScale = 0
    for (let ib = 0; ib < 16; ib++) {
      const scale = makeQxQuants(16, 32, src, x + 16 * ib, 16 * ib)
      scales[ib] = scale
      const absScale = Math.abs(scale)
      if (absScale > maxAbsScale) {
        maxAbsScale = absScale
        maxScale = scale
      }
    }
    if (maxAbsScale < GROUP_MAX_EPS) {
      dst.fill(0, p, p + 210)
      continue
    }
    const iscale = f(-128 / maxScale)
    const dBits = f32ToF16(f(1 / iscale))
    dst[p + 208] = dBits & 0xff
    dst[p + 209] = dBits >>> 8
    const dAll = F16_TO_F32[dBits]
    for (let ib = 0; ib < 16; ib++) {
      const s = Math.min(127, nearestInt(f(iscale * scales[ib])))
      dst[p + 192 + ib] = s // stored as int8 (two's complement byte)
    }
    for (let j = 0; j < 16; j++) {
      const d = f(dAll * ((dst[p + 192 + j] << 24) >> 24))
      if (d === 0) continue
      for (let ii = 0; ii < 16; ii++) {
        const l = Math.max(-32, Math.min(31, nearestInt(f(src[x + 16 * j + ii] / d))))
        L8[16 * j + ii] = l + 32
      }
    }
    let ql = p
    let qh = p + 128
    for (let j = 0; j < QK_K; j += 128) {
      for (let l = 0; l < 32; l++) {
        const a = L8[j + l]
        const bq = L8[j + l + 32]
        const c = L8[j + l + 64]
        const e = L8[j + l + 96]
        dst[ql + l] = (a & 0xf) | ((c & 0xf) << 4)
        dst[ql + l + 32] = (bq & 0xf) | ((e & 0xf) << 4)
        dst[qh + l] = (a >> 4) | ((bq >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6)
      }
      ql += 64
      qh += 32
    }
  }
}
