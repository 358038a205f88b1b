/**
 * The WebGPU block executor against llama.cpp (node-llama-cpp prebuilt CPU, F32 KV cache): the tiny Llama GQA model
 * (adjacent-pair RoPE) and the qwen2 model (q/k/v bias, tied embeddings, rotate-half RoPE) of
 * test/oracle/model-fixtures.ts, as f32, q8_0 and Q4_K GGUF files, and the Llama 3 RoPE-scaled model (rope_freqs) as f32. Ours: blocks on the GPU (lavapipe here), a 16-token
 * prefill then 8 one-token decode steps with the KV cache on the device, final norm and LM head on the device too
 * (embeddings on the CPU). llama.cpp:
 * the same 24 tokens in one batch. Asserts argmax equal at every position whose llama.cpp top-two gap exceeds the
 * position's max |diff|, the median over positions of the max |diff| under 1e-4 (same arithmetic: ggml's q8_0/q8_K
 * activation quantization, integer block sums), and a max |logit diff| bound per dtype: f32 and q8_0 1e-4 (measured
 * ~1e-6); Q4_K 0.3 (measured ~3e-6 without and 0.06-0.15 with a flip: an activation quant one step apart where a
 * last-bit difference landed on a rounding boundary, as model-oracle-quant.test.ts describes for the CPU reference).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  BackendRegistry, createWebGpuExecutor, LocalModel, openModel, syntheticVocab, useLocalLavapipe, writeGgufModel,
  type BlockExecutor, type ModelConfig
} from '@swarm/kernels'
import { disposeLlamaCpp, llamaCppLogits } from './oracle/llama-cpp.js'
import { compareLogits, fmt, LLAMA3_SCALED, LLAMA_GQA, QWEN2_TIED, randomTokens, testWeights } from './oracle/model-fixtures.js'

const SKIP = process.env.SWARM_SKIP_WEBGPU === '1'
const dir = mkdtempSync(join(tmpdir(), 'webgpu-oracle-'))
const vocab = syntheticVocab()
const TOKENS = randomTokens(24, vocab.tokens.length, 43)
const PREFILL = 16
const MODELS: Record<string, ModelConfig> = { llama: LLAMA_GQA, qwen2: QWEN2_TIED }
type DTypeCase = 'f32' | 'q8_0' | 'q4_K'
/** max |logit diff| per dtype: f32 and q8_0 measured ~1e-6 here; q4_K up to 0.15 where an activation quant flipped */
const BOUND: Record<DTypeCase, number> = { f32: 1e-4, q8_0: 1e-4, q4_K: 0.3 }
const path = (model: string, dtype: DTypeCase): string => join(dir, `${model}-${dtype}.gguf`)

let executor: BlockExecutor
beforeAll(async () => {
  if (SKIP) return
  useLocalLavapipe()
  executor = await createWebGpuExecutor()
  for (const [model, config] of Object.entries(MODELS)) {
    const weights = testWeights(config, 11)
    for (const dtype of ['f32', 'q8_0', 'q4_K'] as const) await writeGgufModel(path(model, dtype), config, weights, { dtype, vocab })
  }
  await writeGgufModel(path('llama3', 'f32'), LLAMA3_SCALED, testWeights(LLAMA3_SCALED, 11), { dtype: 'f32', vocab })
})
afterAll(async () => {
  await disposeLlamaCpp()
  rmSync(dir, { recursive: true, force: true })
})

async function gpuLogits (file: string): Promise<Float32Array[]> {
  const source = await openModel(file)
  try {
    const model = await LocalModel.load(source, { ops: new BackendRegistry().ops(['cpu-reference']), executor })
    const session = model.createSession(TOKENS.length)
    const V = model.config.vocabSize
    const prefill = await session.forwardAsync(TOKENS.slice(0, PREFILL), { allLogits: true })
    const out = Array.from({ length: PREFILL }, (_, t) => prefill.slice(t * V, (t + 1) * V))
    for (const token of TOKENS.slice(PREFILL)) out.push(Float32Array.from(await session.forwardAsync([token])))
    session.dispose()
    return out
  } finally {
    await source.close()
  }
}

describe.skipIf(SKIP)('WebGPU executor logits vs llama.cpp (prefill 16, then 8 decode steps)', () => {
  const cases: Array<[string, DTypeCase]> = [...Object.keys(MODELS).flatMap(m => (['f32', 'q8_0', 'q4_K'] as const).map((d): [string, DTypeCase] => [m, d])), ['llama3', 'f32']]
  for (const [model, dtype] of cases) {
    it(`${model} ${dtype}`, async () => {
      const ours = await gpuLogits(path(model, dtype))
      const theirs = await llamaCppLogits(path(model, dtype), TOKENS)
      const c = compareLogits(ours, theirs)
      const realMismatches = c.argmaxMismatches.filter(t => {
        const sorted = Array.from(theirs[t]).sort((x, y) => y - x)
        return sorted[0] - sorted[1] > c.perPosition[t]
      })
      console.log(`webgpu ${model} ${dtype}: max |ours - llama.cpp| ${fmt(c.maxAbsDiff)}, median per position ${fmt(c.medianPosition)}, ` +
        `argmax mismatches ${c.argmaxMismatches.length} (outside near-ties ${realMismatches.length})`)
      expect(realMismatches).toEqual([])
      expect(c.medianPosition).toBeLessThan(1e-4)
      expect(c.maxAbsDiff).toBeLessThan(BOUND[dtype])
    })
  }
})
