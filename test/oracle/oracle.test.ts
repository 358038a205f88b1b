// Self-check of the llama.cpp oracle on tiny test-only GGUFs (test/oracle/tiny-gguf.ts): logits against an
// independent f64 JS forward pass, greedy against the logits' argmax, tokenize/detokenize, and llama.cpp's quantizer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  disposeLlamaCpp,
  ggufTensorTypes,
  llamaCppDetokenize,
  llamaCppGreedy,
  llamaCppLogits,
  llamaCppQuantize,
  llamaCppTokenize
} from './llama-cpp.js'
import { writeTinyLlamaGguf, type TinyLlamaOptions } from './tiny-gguf.js'

const dir = join(tmpdir(), `oracle-selfcheck-${process.pid}`)
const f32 = join(dir, 'tiny-f32.gguf')
const f32k = join(dir, 'tiny-d256-f32.gguf')
const cfg: Required<Pick<TinyLlamaOptions, 'dim' | 'layers' | 'heads' | 'kvHeads' | 'ffn'>> = { dim: 64, layers: 2, heads: 4, kvHeads: 2, ffn: 128 }
let nVocab = 0
let W: Map<string, Float32Array>

beforeAll(() => {
  mkdirSync(dir, { recursive: true })
  const r = writeTinyLlamaGguf(f32, cfg)
  nVocab = r.vocabSize
  W = r.tensors
  writeTinyLlamaGguf(f32k, { dim: 256, layers: 1, heads: 4, kvHeads: 2, ffn: 512, seed: 7 })
})
afterAll(async () => {
  await disposeLlamaCpp()
  rmSync(dir, { recursive: true, force: true })
})

/** Independent f64 reference of the Llama forward on GGUF-layout weights (adjacent-pair RoPE, GQA). */
function referenceLogits(tokens: number[]): Float64Array[] {
  const { dim, layers, heads, kvHeads, ffn } = cfg
  const hd = dim / heads
  const kvDim = hd * kvHeads
  const eps = 1e-5
  const w = (n: string): Float32Array => W.get(n)!
  const matvec = (m: Float32Array, x: Float64Array, rows: number): Float64Array => {
    const cols = x.length
    const y = new Float64Array(rows)
    for (let r = 0; r < rows; r++) {
      let s = 0
      for (let c = 0; c < cols; c++) s += m[r * cols + c] * x[c]
      y[r] = s
    }
    return y
  }
  const rmsnorm = (x: Float64Array, g: Float32Array): Float64Array => {
    let ss = 0
    for (const v of x) ss += v * v
    const k = 1 / Math.sqrt(ss / x.length + eps)
    return x.map((v, i) => v * k * g[i])
  }
  const rope = (v: Float64Array, nh: number, pos: number): void => {
    for (let h = 0; h < nh; h++)
      for (let j = 0; j < hd / 2; j++) {
        const a = pos * Math.pow(10000, (-2 * j) / hd)
        const i0 = h * hd + 2 * j
        const x0 = v[i0]
        const x1 = v[i0 + 1]
        v[i0] = x0 * Math.cos(a) - x1 * Math.sin(a)
        v[i0 + 1] = x0 * Math.sin(a) + x1 * Math.cos(a)
      }
  }
  const Ks: Float64Array[][] = Array.from({ length: layers }, () => [])
  const Vs: Float64Array[][] = Array.from({ length: layers }, () => [])
  const out: Float64Array[] = []
  tokens.forEach((tok, pos) => {
    let x = Float64Array.from(w('token_embd.weight').subarray(tok * dim, (tok + 1) * dim))
    for (let l = 0; l < layers; l++) {
      const p = `blk.${l}.`
      const h = rmsnorm(x, w(p + 'attn_norm.weight'))
      const q = matvec(w(p + 'attn_q.weight'), h, dim)
      const k = matvec(w(p + 'attn_k.weight'), h, kvDim)
      const v = matvec(w(p + 'attn_v.weight'), h, kvDim)
      rope(q, heads, pos)
      rope(k, kvHeads, pos)
      Ks[l].push(k)
      Vs[l].push(v)
      const att = new Float64Array(dim)
      for (let hh = 0; hh < heads; hh++) {
        const kh = Math.floor(hh / (heads / kvHeads))
        const s = Ks[l].map((kk) => {
          let d = 0
          for (let i = 0; i < hd; i++) d += q[hh * hd + i] * kk[kh * hd + i]
          return d / Math.sqrt(hd)
        })
        const m = Math.max(...s)
        const e = s.map((z) => Math.exp(z - m))
        const z = e.reduce((a, b) => a + b, 0)
        e.forEach((ei, t) => {
          for (let i = 0; i < hd; i++) att[hh * hd + i] += (ei / z) * Vs[l][t][kh * hd + i]
        })
      }
      const o = matvec(w(p + 'attn_output.weight'), att, dim)
      x = x.map((xi, i) => xi + o[i])
      const h2 = rmsnorm(x, w(p + 'ffn_norm.weight'))
      const g = matvec(w(p + 'ffn_gate.weight'), h2, ffn)
      const u = matvec(w(p + 'ffn_up.weight'), h2, ffn)
      const a = g.map((gi, i) => (gi / (1 + Math.exp(-gi))) * u[i])
      const d = matvec(w(p + 'ffn_down.weight'), a, dim)
      x = x.map((xi, i) => xi + d[i])
    }
    out.push(matvec(w('output.weight'), rmsnorm(x, w('output_norm.weight')), nVocab))
  })
  return out
}

const argmax = (a: ArrayLike<number>): number => {
  let b = 0
  for (let i = 1; i < a.length; i++) if (a[i] > a[b]) b = i
  return b
}
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]))
  return m
}

describe('llama.cpp oracle self-check', () => {
  it('tokenizes with the SPM vocab (BOS with addSpecial, byte fallback, special parsing)', async () => {
    const ids = await llamaCppTokenize(f32, 'hello world', { addSpecial: true })
    expect(ids[0]).toBe(1)
    expect(ids.length).toBeGreaterThan(2)
    expect(await llamaCppDetokenize(f32, ids.slice(1))).toContain('hello world')
    expect(await llamaCppTokenize(f32, 'hello world')).toEqual(ids.slice(1))
    // 'Z' is not a piece: byte fallback to <0x5A> = 3 + 0x5A
    expect(await llamaCppTokenize(f32, 'Z')).toContain(3 + 0x5a)
    expect(await llamaCppTokenize(f32, '</s>', { parseSpecial: true })).toContain(2)
    expect(await llamaCppTokenize(f32, '</s>', { parseSpecial: false })).not.toContain(2)
  })

  it('full-vocab logits at every position match an f64 reference forward', async () => {
    const toks = [1, 300, 301, 17, 290, 5, 302, 260]
    const logits = await llamaCppLogits(f32, toks)
    const ref = referenceLogits(toks)
    expect(logits.length).toBe(toks.length)
    let worst = 0
    logits.forEach((l, i) => {
      expect(l.length).toBe(nVocab)
      expect(l.every(Number.isFinite)).toBe(true)
      worst = Math.max(worst, maxAbsDiff(l, ref[i]))
      expect(argmax(l)).toBe(argmax(ref[i]))
    })
    console.log(`oracle vs f64 reference: max |logit diff| ${worst.toExponential(2)} over ${toks.length} positions`)
    expect(worst).toBeLessThan(1e-4)
  })

  it('greedy returns n tokens, equal to the argmax of the teacher-forced logits', async () => {
    const prompt = [1, 300, 301]
    const out = await llamaCppGreedy(f32, prompt, 12)
    expect(out.length).toBe(12)
    const logits = await llamaCppLogits(f32, [...prompt, ...out])
    for (let i = 0; i < out.length; i++) expect(argmax(logits[prompt.length - 1 + i])).toBe(out[i])
  })

  it('quantizes with llama_model_quantize (q8_0, q4_0, f16 at dim 64; Q4_K falls back to Q5_0 there)', async () => {
    const expectTypes = async (path: string, want: string): Promise<Map<string, string>> => {
      const types = await ggufTensorTypes(path)
      expect(types.get('blk.0.attn_q.weight')).toBe(want)
      expect(types.get('blk.0.attn_norm.weight')).toBe('F32')
      return types
    }
    const q8 = join(dir, 'tiny-q8_0.gguf')
    await llamaCppQuantize(f32, q8, 'q8_0')
    expect(statSync(q8).size).toBeLessThan(statSync(f32).size / 3)
    await expectTypes(q8, 'Q8_0')
    const ref = await llamaCppLogits(f32, [1, 300, 301, 302])
    const l8 = await llamaCppLogits(q8, [1, 300, 301, 302])
    expect(maxAbsDiff(l8[3], ref[3])).toBeLessThan(0.1)
    const f16 = join(dir, 'tiny-f16.gguf')
    await llamaCppQuantize(f32, f16, 'f16')
    await expectTypes(f16, 'F16')
    const q4 = join(dir, 'tiny-q4_0.gguf')
    await llamaCppQuantize(f32, q4, 'q4_0')
    await expectTypes(q4, 'Q4_0')
    const q4k = join(dir, 'tiny-q4_K-fallback.gguf')
    await llamaCppQuantize(f32, q4k, 'q4_K')
    await expectTypes(q4k, 'Q5_0')
  })

  it('K-quants at dim 256 / ffn 512: pure Q4_K and Q6_K, and the Q4_K_M mix', async () => {
    const q4k = join(dir, 'd256-q4_K.gguf')
    await llamaCppQuantize(f32k, q4k, 'q4_K')
    const t4 = await ggufTensorTypes(q4k)
    for (const n of ['token_embd.weight', 'output.weight', 'blk.0.attn_q.weight', 'blk.0.ffn_down.weight'])
      expect(t4.get(n)).toBe('Q4_K')
    const q6k = join(dir, 'd256-q6_K.gguf')
    await llamaCppQuantize(f32k, q6k, 'q6_K')
    const t6 = await ggufTensorTypes(q6k)
    expect(t6.get('blk.0.ffn_up.weight')).toBe('Q6_K')
    const qm = join(dir, 'd256-q4_K_M.gguf')
    await llamaCppQuantize(f32k, qm, 'q4_K_M')
    const tm = await ggufTensorTypes(qm)
    console.log('Q4_K_M mix:', Object.fromEntries(tm))
    expect(tm.get('blk.0.attn_q.weight')).toBe('Q4_K')
    const l = await llamaCppLogits(q4k, [1, 300, 301])
    expect(l[2].every(Number.isFinite)).toBe(true)
  })
})
