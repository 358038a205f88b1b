/**
 * WGSL kernels of the WebGPU block executor. Weights are bound as `array<u32>` holding their stored bytes
 * (f32, f16, bf16, q8_0, q4_0, q4_K, q6_K exactly as in GGUF); activations are f32 and are rounded (f16, bf16) or
 * quantized (q8_0, q8_K) before a matmul as ggml's CPU backend does, so results follow ops/reference.ts.
 *
 * Matmul: one workgroup of 64 threads per output row and tile of tokens (1 for decode, 8 for prefill). Float weights
 * are read element-interleaved across the threads; quantized rows in units of 32 elements (one q8_0/q4_0 block, one
 * q4_K sub-block, a quarter of a q6_K half-block), each unpacked once into packed int8 and dotted with every token of
 * the tile through dot4I8Packed. Attention: online softmax over 64-key tiles, one workgroup per (head, token), or for
 * decode steps over a long cache, per (head, token, 256-key split) with a combining pass (flash-decoding).
 */
import type { DType } from '../types.js'

export const MATMUL_WORKGROUP = 64
/** tokens per matmul workgroup: one for decode steps, a tile for prefill (each weight unit dequantized once per tile) */
export const MATMUL_TOKENS_DECODE = 1
export const MATMUL_TOKENS_PREFILL = 8
export const NORM_WORKGROUP = 256
export const ELEMENTWISE_WORKGROUP = 256
export const ATTENTION_WORKGROUP = 64
/** split attention (flash-decoding): keys per workgroup, and when to split (a few tokens over a long cache) */
export const ATTENTION_KEYS_PER_SPLIT = 256
export const ATTENTION_SPLIT_MAX_TOKENS = 4
/** largest head dimension the attention kernel holds (each of its 64 threads owns headDim/64 output values) */
export const ATTENTION_MAX_HEAD_DIM = 256

/** weight dtypes the matmul kernel reads */
export const GPU_MATMUL_DTYPES: readonly DType[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_K', 'q6_K']

/**
 * x rounded to the nearest f16 value, ties to even, returned as f32 (pack2x16float's rounding is implementation
 * defined: lavapipe truncates). Values past the f16 range are not turned into infinity.
 */
const ROUND_F16 = /* wgsl */`
fn round_f16(x: f32) -> f32 {
  if (abs(x) < 6.103515625e-5) { return round(x * 16777216.0) / 16777216.0; }
  let u = bitcast<u32>(x);
  return bitcast<f32>((u + 0xfffu + ((u >> 13u) & 1u)) & 0xffffe000u);
}`

/**
 * a / b correctly rounded, as the CPU divides. WGSL lets a division be off by 2.5 ULP, and NVIDIA's is: a scale one
 * ULP off moves values that lie near a rounding boundary to the next integer when they are quantized. So of the
 * quotient and its neighbours up to 3 ULP away, the one nearest a / b wins, judged by the exact residual a - q b
 * (fma rounds once).
 */
const DIV_RN = /* wgsl */`
fn div_rn(a: f32, b: f32) -> f32 {
  let q0 = a / b;
  var best = q0;
  var err = abs(fma(-q0, b, a));
  for (var k = -3; k <= 3; k++) {
    let c = bitcast<f32>(bitcast<i32>(q0) + k);
    let e = abs(fma(-c, b, a));
    if (e < err) { best = c; err = e; }
  }
  return best;
}`

const BYTE_HELPERS = /* wgsl */`
fn byte_at(i: u32) -> u32 { return (w[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu; }
fn i8_at(i: u32) -> i32 { return (i32(byte_at(i)) << 24u) >> 24u; }
`

/** how a weight dtype wants its activation: ggml's vec_dot_type (the CPU reference follows it) */
export type ActivationKind = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q8_K'
export const ACTIVATION_KIND: Readonly<Record<DType, ActivationKind>> = {
  f32: 'f32', f16: 'f16', bf16: 'bf16', q8_0: 'q8_0', q4_0: 'q8_0', q4_K: 'q8_K', q6_K: 'q8_K'
}
/** elements per scale of a quantized activation */
export const ACTIVATION_BLOCK: Readonly<Record<'q8_0' | 'q8_K', number>> = { q8_0: 32, q8_K: 256 }

/**
 * float weights: `wval` reads element c of the row at byte rowBase; `act` rounds the activation as ggml does. Threads
 * take elements tid, tid + 64, ..., so neighbouring threads read neighbouring words.
 */
const FLOAT_UNIT: Record<'f32' | 'f16' | 'bf16', string> = {
  f32: /* wgsl */`
fn act(x: f32) -> f32 { return x; }
fn wval(rowBase: u32, c: u32) -> f32 { return bitcast<f32>(w[(rowBase >> 2u) + c]); }`,
  f16: /* wgsl */`
${ROUND_F16}
fn act(x: f32) -> f32 { return round_f16(x); }
fn wval(rowBase: u32, c: u32) -> f32 {
  let h = (rowBase >> 1u) + c;
  return unpack2x16float(w[h >> 1u] >> ((h & 1u) * 16u)).x;
}`,
  bf16: /* wgsl */`
fn act(x: f32) -> f32 {
  let u = bitcast<u32>(x);
  return bitcast<f32>(((u + 0x7fffu + ((u >> 16u) & 1u)) >> 16u) << 16u);
}
fn wval(rowBase: u32, c: u32) -> f32 {
  let h = (rowBase >> 1u) + c;
  return bitcast<f32>(((w[h >> 1u] >> ((h & 1u) * 16u)) & 0xffffu) << 16u);
}`
}

/**
 * Quantized weights: unit u's 32 weights as 8 words of packed int8 (`wq`), and the unit's dot with token t's q8
 * activation (also packed, 4 per word) in ggml's arithmetic: integer sums via dot4I8Packed, scaled once per unit.
 * Nibble weights are packed as their unsigned values and the offset (8 for q4_0, 32 for q6_K) is taken off through
 * the activation's sum. Blocks of 34, 18 and 210 bytes start at 2 mod 4 every other block: `funnel` reads such
 * unaligned spans from aligned words.
 */
const QUANT_UNIT: Record<'q8_0' | 'q4_0' | 'q4_K' | 'q6_K', string> = {
  q8_0: /* wgsl */`
fn unit(rowBase: u32, u: u32, wq: ptr<function, array<u32, 8>>) -> Unit {
  let b = rowBase + u * 34u;
  funnel8(b + 2u, wq);
  return Unit(f16_even(b), 0.0, 0, 0);
}
fn unit_dot(un: Unit, wq: ptr<function, array<u32, 8>>, xw: u32, dx: f32) -> f32 {
  var sumi = 0;
  for (var k = 0u; k < 8u; k++) { sumi += dot4((*wq)[k], xq[xw + k]); }
  return f32(sumi) * (un.d * dx);
}`,
  q4_0: /* wgsl */`
fn unit(rowBase: u32, u: u32, wq: ptr<function, array<u32, 8>>) -> Unit {
  let b = rowBase + u * 18u;
  var raw: array<u32, 8>;
  funnel4(b + 2u, &raw);
  for (var k = 0u; k < 4u; k++) {
    (*wq)[k] = raw[k] & 0x0f0f0f0fu;
    (*wq)[k + 4u] = (raw[k] >> 4u) & 0x0f0f0f0fu;
  }
  return Unit(f16_even(b), 0.0, 0, 0);
}
fn unit_dot(un: Unit, wq: ptr<function, array<u32, 8>>, xw: u32, dx: f32) -> f32 {
  var sumi = 0;
  var bsum = 0;
  for (var k = 0u; k < 8u; k++) { let a = xq[xw + k]; sumi += dot4((*wq)[k], a); bsum += dot4(0x01010101u, a); }
  return f32(sumi - 8 * bsum) * (un.d * dx);
}`,
  q4_K: /* wgsl */`
fn unit(rowBase: u32, u: u32, wq: ptr<function, array<u32, 8>>) -> Unit {
  let b = rowBase + (u >> 3u) * 144u;
  let is = u & 7u;
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
  let qs = (b + 16u + (is >> 1u) * 32u) >> 2u;
  let shift = (is & 1u) * 4u;
  for (var k = 0u; k < 8u; k++) { (*wq)[k] = (w[qs + k] >> shift) & 0x0f0f0f0fu; }
  return Unit(f16_even(b), f16_even(b + 2u), i32(sc), i32(m));
}
fn unit_dot(un: Unit, wq: ptr<function, array<u32, 8>>, xw: u32, dx: f32) -> f32 {
  var sumi = 0;
  var bsum = 0;
  for (var k = 0u; k < 8u; k++) { let a = xq[xw + k]; sumi += dot4((*wq)[k], a); bsum += dot4(0x01010101u, a); }
  return (un.d * dx) * f32(un.s0 * sumi) - (un.dmin * dx) * f32(un.s1 * bsum);
}`,
  q6_K: /* wgsl */`
fn unit(rowBase: u32, u: u32, wq: ptr<function, array<u32, 8>>) -> Unit {
  let b = rowBase + (u >> 3u) * 210u;
  let su = u & 7u;
  let hf = su >> 2u;
  let quarter = su & 3u;
  var ql: array<u32, 8>;
  var qh: array<u32, 8>;
  funnel8(b + 64u * hf + (quarter & 1u) * 32u, &ql);
  funnel8(b + 128u + 32u * hf, &qh);
  let lowShift = (quarter >> 1u) * 4u;
  let highShift = 2u * quarter;
  for (var k = 0u; k < 8u; k++) {
    (*wq)[k] = ((ql[k] >> lowShift) & 0x0f0f0f0fu) | (((qh[k] >> highShift) & 0x03030303u) << 4u);
  }
  let sc = b + 192u + 8u * hf + 2u * quarter;
  return Unit(f16_even(b + 208u), 0.0, i8_at(sc), i8_at(sc + 1u));
}
fn unit_dot(un: Unit, wq: ptr<function, array<u32, 8>>, xw: u32, dx: f32) -> f32 {
  var lo = 0;
  var hi = 0;
  for (var k = 0u; k < 4u; k++) {
    let a = xq[xw + k];
    let c = xq[xw + k + 4u];
    lo += dot4((*wq)[k], a) - 32 * dot4(0x01010101u, a);
    hi += dot4((*wq)[k + 4u], c) - 32 * dot4(0x01010101u, c);
  }
  return (un.d * dx) * f32(un.s0 * lo + un.s1 * hi);
}`
}

const QUANT_HELPERS = /* wgsl */`
struct Unit { d: f32, dmin: f32, s0: i32, s1: i32 }
/** the f16 at an even byte offset */
fn f16_even(i: u32) -> f32 { return unpack2x16float(w[i >> 2u] >> ((i & 2u) * 8u)).x; }
/** 8 (4) words of bytes starting at byte offset i, any alignment; branch-free so SIMD lanes do not diverge */
fn funnel_word(lo: u32, hi: u32, sh: u32) -> u32 { return (lo >> sh) | select(0u, hi << (32u - sh), sh != 0u); }
fn funnel8(i: u32, out: ptr<function, array<u32, 8>>) {
  let base = i >> 2u;
  let sh = (i & 3u) * 8u;
  var lo = w[base];
  for (var k = 0u; k < 8u; k++) {
    let hi = w[base + k + 1u];
    (*out)[k] = funnel_word(lo, hi, sh);
    lo = hi;
  }
}
fn funnel4(i: u32, out: ptr<function, array<u32, 8>>) {
  let base = i >> 2u;
  let sh = (i & 3u) * 8u;
  var lo = w[base];
  for (var k = 0u; k < 4u; k++) {
    let hi = w[base + k + 1u];
    (*out)[k] = funnel_word(lo, hi, sh);
    lo = hi;
  }
}
`

/** dot product of 4 packed signed bytes: the WGSL built-in where the language feature is there, else unpacked */
export function dot4Source (packedDot: boolean): string {
  return packedDot
    ? 'fn dot4(a: u32, b: u32) -> i32 { return dot4I8Packed(a, b); }'
    : /* wgsl */`
fn dot4(a: u32, b: u32) -> i32 {
  var s = 0;
  for (var k = 0u; k < 4u; k++) {
    let sh = 24u - 8u * k;
    s += (bitcast<i32>(a << sh) >> 24u) * (bitcast<i32>(b << sh) >> 24u);
  }
  return s;
}`
}

// one barrier, then thread tt sums token tt's 64 partial sums (a barrier tree costs more than it saves on CPU
// Vulkan drivers, and these sums are short)
const MATMUL_REDUCE = /* wgsl */`
  for (var tt = 0u; tt < TT; tt++) { partial[tt * WG + tid] = acc[tt]; }
  workgroupBarrier();
  if (tid < TT && r < p.rows) {
    let t = t0 + tid;
    if (t < p.T) {
      var o = 0.0;
      for (var i = 0u; i < WG; i++) { o += partial[tid * WG + i]; }
      if (p.hasBias != 0u) { o += bias[p.rowOffset + r]; }
      y[p.outOffset + t * p.rowStride + p.rowOffset + r] = o;
    }
  }`

const matmulHeader = (tokens: number): string => /* wgsl */`
// rows of this weight chunk, which holds rows rowOffset.. of a matrix of rowStride rows
struct Params { rows: u32, cols: u32, T: u32, rowBytes: u32, hasBias: u32, outOffset: u32, rowStride: u32, rowOffset: u32 }
const WG = ${MATMUL_WORKGROUP}u;
const TT = ${tokens}u;
var<workgroup> partial: array<f32, ${MATMUL_WORKGROUP * tokens}>;
${BYTE_HELPERS}`

/**
 * out[outOffset + t * rows + r] = sum_c W[r, c] x[t, c] (+ bias[r]), with ggml's activation handling: float weights
 * read the f32 activation rounded to the weight's type, quantized weights a q8_0 / q8_K activation (quantizeShader).
 * Bindings: 0 weight bytes, 1 activation (f32, or i32 quants), 2 out, 3 bias, then for quantized weights 4 the
 * activation's block scales; params last.
 */
export function matmulShader (dtype: DType, packedDot = true, tokens = MATMUL_TOKENS_PREFILL): string {
  if (dtype === 'f32' || dtype === 'f16' || dtype === 'bf16') {
    return /* wgsl */`
@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
${matmulHeader(tokens)}
${FLOAT_UNIT[dtype]}
@compute @workgroup_size(${MATMUL_WORKGROUP})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let r = wg.x;
  let t0 = wg.y * TT;
  let rowBase = r * p.rowBytes;
  var acc: array<f32, ${tokens}>;
  for (var c = tid; c < p.cols; c += WG) {
    let wv = wval(rowBase, c);
    for (var tt = 0u; tt < TT; tt++) {
      let t = t0 + tt;
      if (t < p.T) { acc[tt] += wv * act(x[t * p.cols + c]); }
    }
  }
${MATMUL_REDUCE}
}`
  }
  const kind = ACTIVATION_KIND[dtype] as 'q8_0' | 'q8_K'
  const block = ACTIVATION_BLOCK[kind]
  return /* wgsl */`
@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> xq: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> xd: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
${matmulHeader(tokens)}
${QUANT_HELPERS}
${dot4Source(packedDot)}
${QUANT_UNIT[dtype as 'q8_0' | 'q4_0' | 'q4_K' | 'q6_K']}
@compute @workgroup_size(${MATMUL_WORKGROUP})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let r = wg.x;
  let t0 = wg.y * TT;
  let nUnits = p.cols / 32u;
  let xBlocks = p.cols / ${block}u;
  let rowBase = r * p.rowBytes;
  var acc: array<f32, ${tokens}>;
  var wq: array<u32, 8>;
  for (var u = tid; u < nUnits; u += WG) {
    let un = unit(rowBase, u, &wq);
    for (var tt = 0u; tt < TT; tt++) {
      let t = t0 + tt;
      if (t < p.T) {
        acc[tt] += unit_dot(un, &wq, (t * p.cols + u * 32u) >> 2u, xd[t * xBlocks + (u * 32u) / ${block}u]);
      }
    }
  }
${MATMUL_REDUCE}
}`
}

/**
 * Activation quantization, one thread per block, as the CPU reference (and llama.cpp on x86): q8_0 with
 * d = f16(amax / 127), q = round_half_even(x * (127 / amax)); q8_K with iscale = -127 / (the value of largest
 * magnitude), q = min(127, round_half_even(iscale * x)), d = 1 / iscale.
 */
export function quantizeShader (kind: 'q8_0' | 'q8_K'): string {
  const body = kind === 'q8_0'
    ? /* wgsl */`
  var amax = 0.0;
  for (var j = 0u; j < 32u; j++) { amax = max(amax, abs(x[base + j])); }
  xd[b] = round_f16(div_rn(amax, 127.0));
  let id = select(0.0, div_rn(127.0, amax), amax != 0.0);
  for (var j = 0u; j < 32u; j += 4u) {
    xq[(base + j) >> 2u] = pack4(vec4<i32>(round(vec4<f32>(x[base + j], x[base + j + 1u], x[base + j + 2u], x[base + j + 3u]) * id)));
  }`
    : /* wgsl */`
  var amax = 0.0;
  var mx = 0.0;
  for (var j = 0u; j < 256u; j++) {
    let v = x[base + j];
    if (abs(v) > amax) { amax = abs(v); mx = v; }
  }
  if (amax == 0.0) {
    xd[b] = 0.0;
    for (var j = 0u; j < 256u; j += 4u) { xq[(base + j) >> 2u] = 0u; }
    return;
  }
  let iscale = div_rn(-127.0, mx);
  for (var j = 0u; j < 256u; j += 4u) {
    let v = vec4<f32>(x[base + j], x[base + j + 1u], x[base + j + 2u], x[base + j + 3u]);
    xq[(base + j) >> 2u] = pack4(min(vec4<i32>(127), vec4<i32>(round(iscale * v))));
  }
  xd[b] = div_rn(1.0, iscale);`
  return /* wgsl */`
struct Params { nBlocks: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> xq: array<u32>;
@group(0) @binding(2) var<storage, read_write> xd: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
${ROUND_F16}
${DIV_RN}
fn pack4(q: vec4<i32>) -> u32 {
  let b = vec4<u32>(bitcast<vec4<u32>>(q) & vec4<u32>(0xffu));
  return b.x | (b.y << 8u) | (b.z << 16u) | (b.w << 24u);
}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let b = gid.x + gid.y * nwg.x * 64u;
  if (b >= p.nBlocks) { return; }
  let base = b * ${ACTIVATION_BLOCK[kind]}u;${body}
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
export function attentionShader (split: boolean): string {
  return /* wgsl */`
struct Params { T: u32, startPos: u32, nHeads: u32, nKvHeads: u32, headDim: u32, scale: f32, keysPerSplit: u32, nSplits: u32 }
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> kc: array<f32>;
@group(0) @binding(2) var<storage, read> vc: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>; // out, or the splits' (m, l, acc[headDim])
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
  let split = wg.z;
  let kStart = split * p.keysPerSplit;
  let nKeys = min(p.startPos + t + 1u, kStart + p.keysPerSplit); // this split's keys end here
  for (var i = tid; i < hd; i += WG) { qs[i] = q[qBase + i]; }
  workgroupBarrier();
  var m = -3.0e38;
  var l = 0.0;
  var acc: array<f32, ${ATTENTION_MAX_HEAD_DIM / ATTENTION_WORKGROUP}>;
  for (var k0 = kStart; k0 < nKeys; k0 += WG) {
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
${split
    ? `  let pb = ((t * p.nHeads + h) * p.nSplits + split) * (hd + 2u);
  if (tid == 0u) { y[pb] = m; y[pb + 1u] = l; }
  for (var e = 0u; e < PER_THREAD; e++) {
    let d = tid + e * WG;
    if (d < hd) { y[pb + 2u + d] = acc[e]; }
  }`
    : `  for (var e = 0u; e < PER_THREAD; e++) {
    let d = tid + e * WG;
    if (d < hd) { y[qBase + d] = acc[e] / l; }
  }`}
}`
}

/**
 * Combines the key splits of split attention (flash-decoding: a decode step over a long cache spreads its keys over
 * many workgroups): out = sum_s acc_s exp(m_s - m) / sum_s l_s exp(m_s - m), m the largest m_s.
 */
export const ATTENTION_COMBINE_SHADER = /* wgsl */`
struct Params { nHeads: u32, headDim: u32, nSplits: u32 }
@group(0) @binding(0) var<storage, read> part: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@compute @workgroup_size(${ATTENTION_WORKGROUP})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let h = wg.x;
  let t = wg.y;
  let hd = p.headDim;
  let stride = hd + 2u;
  let base = (t * p.nHeads + h) * p.nSplits * stride;
  var m = -3.0e38;
  for (var s = 0u; s < p.nSplits; s++) { m = max(m, part[base + s * stride]); }
  var l = 0.0;
  for (var s = 0u; s < p.nSplits; s++) { l += part[base + s * stride + 1u] * exp(part[base + s * stride] - m); }
  for (var d = tid; d < hd; d += ${ATTENTION_WORKGROUP}u) {
    var o = 0.0;
    for (var s = 0u; s < p.nSplits; s++) { o += part[base + s * stride + 2u + d] * exp(part[base + s * stride] - m); }
    y[(t * p.nHeads + h) * hd + d] = o / l;
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
