/**
 * Our model runtime (LocalModel on the CPU reference backend) against llama.cpp on quantized GGUFs: q8_0, q4_0, Q4_K
 * and Q6_K files written by our fixture writer, and the same f32 weights quantized by llama.cpp's own
 * llama_model_quantize; for the tiny Llama GQA model (dim 256, ffn 512: real K-quant tensors) and the qwen2 model
 * (q/k/v bias, tied embeddings) of test/oracle/model-fixtures.ts (RoPE variants are checked exactly in
 * model-oracle.test.ts; they do not interact with the quantized dot products). Asserts:
 * - the argmax at every position;
 * - at most positions the logits agree to f32 rounding (median over positions of the max abs difference < 1e-4):
 *   the quantized dot products (q8_0 / q8_K activations, per-block integer sums) are the same arithmetic as ggml's;
 * - the max abs difference under a per-dtype bound (the worst measured here, printed per file, times 2-3; q8_0: no
 *   flip here, so a bound far below a flip's effect).
 * Why not exact everywhere: both engines quantize the activations before each matmul, so a one-ulp difference
 * upstream (our f64 accumulation and Math.exp vs ggml's f32 order and SIMD expf) that lands within ~1e-5 of a
 * rounding boundary flips one activation quant by one step, which moves that position's logits (and, through the KV
 * cache, later positions') by up to ~0.1 on these models (logit std ~3). Measured: 1 such position in 24 for the
 * Q4_K/Q6_K/q4_0 files. (The Llama 3 model with these seeds has such a flip at position 5 in its Q4_K file, which
 * carries through the KV cache and turns one later argmax with a 0.03 top-2 gap; hence it is not in this matrix.)
 * Greedy generation of 64 tokens equals llama.cpp's on q8_0 and Q6_K files.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { syntheticVocab, writeGgufModel } from '@swarm/kernels'
import type { ModelConfig } from '@swarm/kernels'
import { disposeLlamaCpp, ggufTensorTypes, llamaCppGreedy, llamaCppLogits, llamaCppQuantize } from './oracle/llama-cpp.js'
import {
  compareLogits, fmt, LLAMA_GQA, ourGreedy, ourLogits, QWEN2_TIED, randomTokens, testWeights
} from './oracle/model-fixtures.js'

const dir = mkdtempSync(join(tmpdir(), 'model-oracle-quant-'))
const vocab = syntheticVocab()
const TOKENS = randomTokens(24, vocab.tokens.length, 43)
const SEED = 11

type QuantDType = 'q8_0' | 'q4_0' | 'q4_K' | 'q6_K'
const DTYPES: QuantDType[] = ['q8_0', 'q4_0', 'q4_K', 'q6_K']
/** max abs logit difference allowed per dtype (see the header); the measured values are printed */
const BOUND: Record<QuantDType, number> = { q8_0: 1e-4, q4_0: 2e-2, q4_K: 0.15, q6_K: 2e-2 }
/** the ggml type of the block weights in each file */
const GGML_TYPE: Record<QuantDType, string> = { q8_0: 'Q8_0', q4_0: 'Q4_0', q4_K: 'Q4_K', q6_K: 'Q6_K' }
const MODELS: Record<string, ModelConfig> = { llama: LLAMA_GQA, qwen2: QWEN2_TIED }
const f32Path = (model: string): string => join(dir, `${model}-f32.gguf`)
const quantPath = (model: string, dtype: QuantDType, by: 'ours' | 'llama.cpp'): string => join(dir, `${model}-${dtype}-${by}.gguf`)

beforeAll(async () => {
  for (const [model, config] of Object.entries(MODELS)) {
    const weights = testWeights(config, SEED)
    await writeGgufModel(f32Path(model), config, weights, { dtype: 'f32', vocab })
    for (const dtype of DTYPES) await writeGgufModel(quantPath(model, dtype, 'ours'), config, weights, { dtype, vocab })
  }
})

afterAll(async () => {
  await disposeLlamaCpp()
  rmSync(dir, { recursive: true, force: true })
})

const worst: Record<string, number> = {}
afterAll(() => console.log('max |ours - llama.cpp| per dtype:', Object.fromEntries(Object.entries(worst).map(([k, v]) => [k, fmt(v)]))))

async function check (path: string, label: string, dtype: QuantDType): Promise<void> {
  const types = await ggufTensorTypes(path)
  expect(types.get('blk.1.ffn_down.weight')).toBe(GGML_TYPE[dtype])
  const mix = [...new Set(types.values())].sort().join('+')
  const c = compareLogits(await ourLogits(path, TOKENS), await llamaCppLogits(path, TOKENS))
  worst[dtype] = Math.max(worst[dtype] ?? 0, c.maxAbsDiff)
  console.log(`${label} [${mix}]: max |ours - llama.cpp| ${fmt(c.maxAbsDiff)}, median position ${fmt(c.medianPosition)}, ` +
    `positions > 1e-4: ${c.perPosition.filter((d) => d > 1e-4).length}/${TOKENS.length}, smallest top-2 gap ${fmt(c.minTopGap)}`)
  expect(c.argmaxMismatches).toEqual([])
  expect(c.medianPosition).toBeLessThan(1e-4)
  expect(c.maxAbsDiff).toBeLessThan(BOUND[dtype])
}

describe('quantized GGUF: argmax at every position, f32-level agreement at most positions, bounded max abs', () => {
  for (const model of Object.keys(MODELS)) {
    for (const dtype of DTYPES) {
      it(`${model} ${dtype}, written by our writer`, async () => {
        await check(quantPath(model, dtype, 'ours'), `${model} ${dtype} (our writer)`, dtype)
      })
      it(`${model} ${dtype}, quantized by llama.cpp (llama_model_quantize)`, async () => {
        const path = quantPath(model, dtype, 'llama.cpp')
        await llamaCppQuantize(f32Path(model), path, dtype)
        await check(path, `${model} ${dtype} (llama.cpp quantizer)`, dtype)
      })
    }
  }
})

describe('greedy generation of 64 tokens equals llama.cpp on quantized files', () => {
  for (const dtype of ['q8_0', 'q6_K'] as const) {
    it(`llama ${dtype}`, async () => {
      const path = quantPath('llama', dtype, 'ours')
      const prompt = [1, ...TOKENS.slice(0, 8)]
      const ours = await ourGreedy(path, prompt, 64)
      expect(ours).toEqual(await llamaCppGreedy(path, prompt, 64))
      expect(new Set(ours).size).toBeGreaterThan(4)
    })
  }
})
