/**
 * WGSL kernels of the WebGPU block executor. Weights are bound as `array<u32>` holding their stored bytes
 * (f32, f16, bf16, q8_0, q4_0, q4_K, q6_K exactly as in GGUF); activations are f32. Semantics follow ops/reference.ts.
 *
 * Matmul walks each weight row in units of 32 elements (one q8_0/q4_0 block, one q4_K sub-block, a quarter of a
 * q6_K half-block, or 32 plain values with a bound check for odd column counts): one workgroup per output row and
 * tile of MATMUL_TOKENS tokens, so a unit is dequantized once and used for every token of the tile.
 */
import type { DType } from '../types.js'

export const MATMUL_WORKGROUP = 64
export const MATMUL_TOKENS = 4
export const NORM_WORKGROUP = 256
export const ELEMENTWISE_WORKGROUP = 256
export const ATTENTION_WORKGROUP = 64
/** largest head dimension the attention kernel holds (each of its 64 threads owns headDim/64 output values) */
export const ATTENTION_MAX_HEAD_DIM = 256

/** weight dtypes the matmul kernel reads */
export const GPU_MATMUL_DTYPES: readonly DType[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_K', 'q6_K']

const BYTE_HELPERS = /* wgsl */`
fn byte_at(i: u32) -> u32 { return (w[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu; }
fn i8_at(i: u32) -> f32 { return f32((i32(byte_at(i)) << 24u) >> 24u); }
fn f16_at(i: u32) -> f32 { return unpack2x16float(byte_at(i) | (byte_at(i + 1u) << 8u)).x; }
`

/** per dtype: fills v[0..n) with the 32-element unit u of the row starting at byte rowBase */
const UNIT: Record<DType, string> = {
  f32: /* wgsl */`
fn unit(rowBase: u32, u: u32, n: u32, v: ptr<function, array<f32, 32>>) {
  let base = (rowBase >> 2u) + u * 32u;
  for (var j = 0u; j < n; j++) { (*v)[j] = bitcast<f32>(w[base + j]); }
}`,
  f16: /* wgsl */`
fn unit(rowBase: u32, u: u32, n: u32, v: ptr<function, array<f32, 32>>) {
  let base = (rowBase >> 1u) + u * 32u;
  for (var j = 0u; j < n; j++) {
    let h = base + j;
    (*v)[j] = unpack2x16float(w[h >> 1u] >> ((h & 1u) * 16u)).x;
  }
}`,
  bf16: /* wgsl */`
fn unit(rowBase: u32, u: u32, n: u32, v: ptr<function, array<f32, 32>>) {
  let base = (rowBase >> 1u) + u * 32u;
  for (var j = 0u; j < n; j++) {
    let h = base + j;
    (*v)[j] = bitcast<f32>(((w[h >> 1u] >> ((h & 1u) * 16u)) & 0xffffu) << 16u);
  }
}`,
  q8_0: /* wgsl */`
fn unit(rowBase: u32, u: u32, n: u32, v: ptr<function, array<f32, 32>>) {
  let b = rowBase + u * 34u;
  let d = f16_at(b);
  for (var j = 0u; j < 32u; j++) { (*v)[j] = d * i8_at(b + 2u + j); }
}`,
  q4_0: /* wgsl */`
fn unit(rowBase: u32, u: u32, n: u32, v: ptr<function, array<f32, 32>>) {
  let b = rowBase + u * 18u;
  let d = f16_at(b);
  for (var j = 0u; j < 16u; j++) {
    let q = byte_at(b + 2u + j);
    (*v)[j] = (f32(q & 15u) - 8.0) * d;
    (*v)[j + 16u] = (f32(q >> 4u) - 8.0) * d;
  }
}`,
  q4_K: /* wgsl */`
fn unit(rowBase: u32, u: u32, n: u32, v: ptr<function, array<f32, 32>>) {
  let b = rowBase + (u >> 3u) * 144u;
  let is = u & 7u;
  let d = f16_at(b);
  let dmin = f16_at(b + 2u);
  let s = b + 4u;
  var sc: u32;
  var m: u32;
  if (is < 4u) {
    sc = byte_at(s + is) & 63u;
    m = byte_at(s + is + 4u) & 63u;
  } else {
    sc = (byte_at(s + is + 4u) & 15u) | ((byte_at(s + is - 4u) >> 6u) << 4u);
    m = (byte_at(s + is + 4u) >> 4u) | ((byte_at(s + is) >> 6u) << 4u);
  }
  let scale = d * f32(sc);
  let mn = dmin * f32(m);
  let qs = b + 16u + (is >> 1u) * 32u;
  let shift = (is & 1u) * 4u;
  for (var l = 0u; l < 32u; l++) { (*v)[l] = scale * f32((byte_at(qs + l) >> shift) & 15u) - mn; }
}`,
  q6_K: /* wgsl */`
fn unit(rowBase: u32, u: u32, n: u32, v: ptr<function, array<f32, 32>>) {
  let b = rowBase + (u >> 3u) * 210u;
  let su = u & 7u;
  let hf = su >> 2u;
  let quarter = su & 3u;
  let d = f16_at(b + 208u);
  let ql = b + 64u * hf + (quarter & 1u) * 32u;
  let qh = b + 128u + 32u * hf;
  let sc = b + 192u + 8u * hf + 2u * quarter;
  let lowShift = (quarter >> 1u) * 4u;
  let highShift = 2u * quarter;
  for (var l = 0u; l < 32u; l++) {
    let q = ((byte_at(ql + l) >> lowShift) & 15u) | (((byte_at(qh + l) >> highShift) & 3u) << 4u);
    (*v)[l] = d * i8_at(sc + (l >> 4u)) * (f32(q) - 32.0);
  }
}`
}

/** out[outOffset + t * rows + r] = sum_c W[r, c] x[t, c] (+ bias[r]) */
export function matmulShader (dtype: DType): string {
  return /* wgsl */`
struct Params { rows: u32, cols: u32, T: u32, rowBytes: u32, hasBias: u32, outOffset: u32 }
@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
const WG = ${MATMUL_WORKGROUP}u;
const TT = ${MATMUL_TOKENS}u;
var<workgroup> partial: array<f32, ${MATMUL_WORKGROUP * MATMUL_TOKENS}>;
${BYTE_HELPERS}
${UNIT[dtype]}
@compute @workgroup_size(${MATMUL_WORKGROUP})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let r = wg.x;
  let t0 = wg.y * TT;
  let nUnits = (p.cols + 31u) / 32u;
  let rowBase = r * p.rowBytes;
  var acc: array<f32, ${MATMUL_TOKENS}>;
  var v: array<f32, 32>;
  for (var u = tid; u < nUnits; u += WG) {
    let c0 = u * 32u;
    let n = min(32u, p.cols - c0);
    unit(rowBase, u, n, &v);
    for (var tt = 0u; tt < TT; tt++) {
      let t = t0 + tt;
      if (t < p.T) {
        let xb = t * p.cols + c0;
        var s = 0.0;
        for (var j = 0u; j < n; j++) { s += v[j] * x[xb + j]; }
        acc[tt] += s;
      }
    }
  }
  for (var tt = 0u; tt < TT; tt++) { partial[tt * WG + tid] = acc[tt]; }
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) {
      for (var tt = 0u; tt < TT; tt++) { partial[tt * WG + tid] += partial[tt * WG + tid + s]; }
    }
    workgroupBarrier();
  }
  if (tid < TT && r < p.rows) {
    let t = t0 + tid;
    if (t < p.T) {
      var o = partial[tid * WG];
      if (p.hasBias != 0u) { o += bias[r]; }
      y[p.outOffset + t * p.rows + r] = o;
    }
  }
}`
}

/** out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * weight; one workgroup per token */
export const RMS_NORM_SHADER = /* wgsl */`
struct Params { dim: u32, eps: f32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
const WG = ${NORM_WORKGROUP}u;
var<workgroup> partial: array<f32, ${NORM_WORKGROUP}>;
@compute @workgroup_size(${NORM_WORKGROUP})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let base = wg.x * p.dim;
  var s = 0.0;
  for (var i = tid; i < p.dim; i += WG) { let v = x[base + i]; s += v * v; }
  partial[tid] = s;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (tid < k) { partial[tid] += partial[tid + k]; }
    workgroupBarrier();
  }
  let scale = 1.0 / sqrt(partial[0] / f32(p.dim) + p.eps);
  for (var i = tid; i < p.dim; i += WG) { y[base + i] = (x[base + i] * scale) * weight[i]; }
}`

/**
 * Rotates heads in place; cos/sin come from a table [T, headDim / 2] of (cos, sin) computed on the CPU in f64
 * (GPU sin/cos lose accuracy far from zero). adjacent: pairs (2j, 2j+1); halves: pairs (j, j + headDim/2).
 */
export const ROPE_SHADER = /* wgsl */`
struct Params { T: u32, nHeads: u32, headDim: u32, adjacent: u32, offset: u32, rowStride: u32 }
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> cs: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@compute @workgroup_size(${ELEMENTWISE_WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let hh = p.headDim / 2u;
  let idx = gid.x + gid.y * nwg.x * ${ELEMENTWISE_WORKGROUP}u;
  if (idx >= p.T * p.nHeads * hh) { return; }
  let j = idx % hh;
  let h = (idx / hh) % p.nHeads;
  let t = idx / (hh * p.nHeads);
  let c = cs[(t * hh + j) * 2u];
  let s = cs[(t * hh + j) * 2u + 1u];
  let base = p.offset + t * p.rowStride + h * p.headDim;
  var i0 = base + j;
  var i1 = base + j + hh;
  if (p.adjacent != 0u) { i0 = base + 2u * j; i1 = i0 + 1u; }
  let a = x[i0];
  let b = x[i1];
  x[i0] = a * c - b * s;
  x[i1] = a * s + b * c;
}`

/**
 * Causal attention of T new tokens over the KV cache, one workgroup per (query head, token): keys in tiles of 64
 * (one score per thread), running max and sum rescaled per tile (online softmax, FlashAttention-style), each thread
 * owning headDim/64 output values. GQA: head h reads kv head h / (nHeads / nKvHeads).
 */
export const ATTENTION_SHADER = /* wgsl */`
struct Params { T: u32, startPos: u32, nHeads: u32, nKvHeads: u32, headDim: u32, scale: f32 }
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> kc: array<f32>;
@group(0) @binding(2) var<storage, read> vc: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
const WG = ${ATTENTION_WORKGROUP}u;
const PER_THREAD = ${ATTENTION_MAX_HEAD_DIM / ATTENTION_WORKGROUP}u;
var<workgroup> qs: array<f32, ${ATTENTION_MAX_HEAD_DIM}>;
var<workgroup> sc: array<f32, ${ATTENTION_WORKGROUP}>;
var<workgroup> red: array<f32, ${ATTENTION_WORKGROUP}>;
@compute @workgroup_size(${ATTENTION_WORKGROUP})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let h = wg.x;
  let t = wg.y;
  let hd = p.headDim;
  let kvStride = p.nKvHeads * hd;
  let kvOffset = (h / (p.nHeads / p.nKvHeads)) * hd;
  let qBase = (t * p.nHeads + h) * hd;
  let nKeys = p.startPos + t + 1u;
  for (var i = tid; i < hd; i += WG) { qs[i] = q[qBase + i]; }
  workgroupBarrier();
  var m = -3.0e38;
  var l = 0.0;
  var acc: array<f32, ${ATTENTION_MAX_HEAD_DIM / ATTENTION_WORKGROUP}>;
  for (var k0 = 0u; k0 < nKeys; k0 += WG) {
    let s = k0 + tid;
    var score = -3.0e38;
    if (s < nKeys) {
      let kb = s * kvStride + kvOffset;
      var dot = 0.0;
      for (var i = 0u; i < hd; i++) { dot += qs[i] * kc[kb + i]; }
      score = dot * p.scale;
    }
    red[tid] = score;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
      if (tid < k) { red[tid] = max(red[tid], red[tid + k]); }
      workgroupBarrier();
    }
    let mNew = max(m, red[0]);
    let corr = exp(m - mNew);
    var pv = 0.0;
    if (s < nKeys) { pv = exp(score - mNew); }
    sc[tid] = pv;
    workgroupBarrier();
    let nTile = min(WG, nKeys - k0);
    var tileSum = 0.0;
    for (var j = 0u; j < nTile; j++) { tileSum += sc[j]; }
    for (var e = 0u; e < PER_THREAD; e++) {
      let d = tid + e * WG;
      if (d < hd) {
        var a = acc[e] * corr;
        for (var j = 0u; j < nTile; j++) { a += sc[j] * vc[(k0 + j) * kvStride + kvOffset + d]; }
        acc[e] = a;
      }
    }
    l = l * corr + tileSum;
    m = mNew;
    workgroupBarrier();
  }
  for (var e = 0u; e < PER_THREAD; e++) {
    let d = tid + e * WG;
    if (d < hd) { y[qBase + d] = acc[e] / l; }
  }
}`

/** out = silu(gate) * up */
export const SWIGLU_SHADER = /* wgsl */`
struct Params { n: u32 }
@group(0) @binding(0) var<storage, read_write> gate: array<f32>;
@group(0) @binding(1) var<storage, read> up: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@compute @workgroup_size(${ELEMENTWISE_WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${ELEMENTWISE_WORKGROUP}u;
  if (i >= p.n) { return; }
  let g = gate[i];
  gate[i] = (g / (1.0 + exp(-g))) * up[i];
}`

/** a += b */
export const ADD_SHADER = /* wgsl */`
struct Params { n: u32 }
@group(0) @binding(0) var<storage, read_write> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@compute @workgroup_size(${ELEMENTWISE_WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${ELEMENTWISE_WORKGROUP}u;
  if (i >= p.n) { return; }
  a[i] = a[i] + b[i];
}`

/** streams a buffer once (sum of every u32 as f32 per thread), for a read-bandwidth figure */
export const READ_BANDWIDTH_SHADER = /* wgsl */`
@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> sink: array<u32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let stride = nwg.x * 256u;
  var acc = vec4<u32>(0u);
  for (var i = gid.x; i < arrayLength(&src); i += stride) { acc ^= src[i]; }
  if (all(acc == vec4<u32>(0x12345678u))) { sink[0] = 1u; }
}`
