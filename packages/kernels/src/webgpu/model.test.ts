/**
 * Whole models on the WebGPU block executor against the CPU reference backend: tiny random GGUF files (llama with
 * adjacent-pair RoPE, qwen2 with q/k/v bias and rotate-half RoPE, tied embeddings, a 256-wide model for the K-quants)
 * and a Hugging Face directory (llama, rotate-half), over a 9-token prefill and then one-token decode steps, the KV
 * cache staying on the device in between. Also a block sub-range of a BlockStack, as a swarm node runs it.
 *
 * Tolerances (NMSE of the logits of every step): float weights 1e-6; quantized weights 1e-3. The kernels quantize and
 * round activations exactly as the reference does, so only f32 (GPU) vs f64 (reference) accumulation differs; but
 * where that last-bit difference lands on a rounding boundary, one activation quant comes out one step apart and the
 * logits move by ~1e-4 NMSE (seen with q4_0 and q6_K here: one block of six off, the others at 1e-15; most quantized
 * cases come out bit-identical). Argmax equal at every position where the reference's top-two margin exceeds that
 * step's max |logit diff| (after such a flip a near-tie may go either way; the positions left out are counted in the
 * printed summary; float dtypes must have none). Expected flip rate: an activation differing in its last bit crosses
 * a q8 rounding boundary with probability ~1e-5, over ~2e4 quantized activations per forward of these models.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BackendRegistry } from '../backend.js'
import { PRESETS, randomWeights, writeGgufModel, writeHfModel, type GgufModelDType } from '../fixtures/random-model.js'
import { openModel } from '../formats/index.js'
import { AsyncExecutorError, BlockStack, LocalModel } from '../model/index.js'
import { syntheticVocab, tokenizerJsonFromVocab } from '../tokenizer/vocab.js'
import type { ModelConfig } from '../types.js'
import { createWebGpuExecutor, type WebGpuBlockExecutor } from './executor.js'
import { nmse, randomArray } from '../conformance-support.js'
import { argmax } from '../sampler.js'
import { SKIP_WEBGPU, testExecutor } from './test-support.js'

const TOLERANCE: Record<string, number> = { f32: 1e-6, f16: 1e-6, bf16: 1e-6, q8_0: 1e-3, q4_0: 1e-3, q4_K: 1e-3, q6_K: 1e-3 }

/** 256 wide, so every row is whole K-quant super-blocks */
const WIDE: ModelConfig = { ...PRESETS.tiny, name: 'wide', dim: 256, ffnDim: 512, nHeads: 4, nKvHeads: 2, headDim: 64, nLayers: 2 }
const CONFIGS: Record<string, ModelConfig> = { tiny: PRESETS.tiny, 'tiny-qwen2': PRESETS['tiny-qwen2'], 'tiny-tied': PRESETS['tiny-tied'], wide: WIDE }

const summary: string[] = []

function topTwoMargin (row: Float32Array): number {
  let first = -Infinity
  let second = -Infinity
  for (const v of row) {
    if (v > first) {
      second = first
      first = v
    } else if (v > second) second = v
  }
  return first - second
}

describe.skipIf(SKIP_WEBGPU)('whole model on the WebGPU executor vs the CPU reference', () => {
  let dir: string
  let executor: WebGpuBlockExecutor
  beforeAll(async () => {
    executor = await testExecutor()
    dir = await mkdtemp(join(tmpdir(), 'webgpu-model-'))
  })
  afterAll(async () => {
    console.log('WebGPU whole-model logits vs CPU reference (prefill 9, decode 3):\n' + summary.join('\n'))
    await rm(dir, { recursive: true, force: true })
  })

  const cases: Array<[string, GgufModelDType | 'hf-f32']> = [
    ['tiny', 'f32'], ['tiny', 'f16'], ['tiny', 'bf16'], ['tiny', 'q8_0'], ['tiny', 'q4_0'], ['tiny-qwen2', 'q8_0'],
    ['tiny-qwen2', 'f32'], ['tiny-tied', 'f32'], ['wide', 'q4_K'], ['wide', 'q6_K'], ['tiny', 'hf-f32']
  ]
  it.each(cases)('%s %s: logits of prefill then decode steps equal the reference', async (preset, dtype) => {
    const config = CONFIGS[preset]
    const vocab = syntheticVocab()
    let path: string
    if (dtype === 'hf-f32') {
      path = join(dir, `${preset}-hf`)
      const { tokenizerJson, tokenizerConfig } = tokenizerJsonFromVocab(vocab)
      await writeHfModel(path, config, randomWeights(config, 11), { dtype: 'f32', tokenizerJson, tokenizerConfig })
    } else {
      path = join(dir, `${preset}-${dtype}.gguf`)
      await writeGgufModel(path, config, randomWeights(config, 11), { dtype, vocab })
    }
    const tokens = Array.from({ length: 12 }, (_, i) => (i * 37 + 5) % config.vocabSize)
    const source = await openModel(path)
    try {
      const ops = new BackendRegistry().ops(['cpu-reference'])
      const refSession = (await LocalModel.load(source, { ops })).createSession(32)
      const model = await LocalModel.load(source, { ops, executor })
      const session = model.createSession(32)
      const steps = [tokens.slice(0, 9), [tokens[9]], [tokens[10]], [tokens[11]]]
      const V = config.vocabSize
      let worst = 0
      let maxAbs = 0
      let nearTies = 0
      for (let i = 0; i < steps.length; i++) {
        const ref = refSession.forward(steps[i], { allLogits: true })
        const out = await session.forwardAsync(steps[i], { allLogits: true })
        const e = nmse(out, ref)
        worst = Math.max(worst, e)
        let stepMaxAbs = 0
        for (let j = 0; j < ref.length; j++) stepMaxAbs = Math.max(stepMaxAbs, Math.abs(out[j] - ref[j]))
        maxAbs = Math.max(maxAbs, stepMaxAbs)
        expect(e, `step ${i}`).toBeLessThanOrEqual(TOLERANCE[dtype === 'hf-f32' ? 'f32' : dtype])
        for (let t = 0; t < steps[i].length; t++) {
          const refRow = ref.subarray(t * V, (t + 1) * V)
          if (topTwoMargin(refRow) <= stepMaxAbs) {
            nearTies++
            continue
          }
          expect(argmax(out.subarray(t * V, (t + 1) * V)), `step ${i} position ${t}`).toBe(argmax(refRow))
        }
      }
      expect(session.position).toBe(12)
      expect(() => session.forward([1])).toThrow(AsyncExecutorError)
      session.dispose()
      summary.push(`  ${`${preset} ${dtype} (rope ${source.config.ropeStyle})`.padEnd(36)} NMSE ${worst.toExponential(2)}  max |diff| ${maxAbs.toExponential(2)}  near-ties skipped ${nearTies}/12`)
      if (!dtype.startsWith('q')) expect(nearTies).toBe(0)
    } finally {
      await source.close()
    }
  })

  it('a block sub-range of a BlockStack (a swarm node entered mid-range) equals the reference stack', async () => {
    const config = PRESETS.tiny
    const path = join(dir, 'range-q8_0.gguf')
    await writeGgufModel(path, config, randomWeights(config, 5), { dtype: 'q8_0', vocab: syntheticVocab() })
    const source = await openModel(path)
    try {
      const range = { start: 1, end: 5 }
      const inner = { start: 2, end: 4 }
      const refStack = await BlockStack.load(source, range, { ops: new BackendRegistry().ops(['cpu-reference']) })
      const gpuStack = await BlockStack.load(source, range, { executor })
      const refCache = refStack.createCache(20, inner)
      const gpuCache = gpuStack.createCache(20, inner)
      expect(gpuCache.byteLength).toBe(2 * 2 * 20 * config.nKvHeads * config.headDim * 4)
      for (const [T, seed] of [[7, 1], [1, 2], [1, 3], [3, 4]]) {
        const hidden = randomArray(T * config.dim, seed)
        const ref = refStack.forward(refCache, hidden, T, inner)
        const out = await gpuStack.forwardAsync(gpuCache, hidden, T, inner)
        expect(nmse(out, ref), `T ${T}`).toBeLessThanOrEqual(TOLERANCE.q8_0)
      }
      expect(gpuCache.length).toBe(12)
      // replay after a truncation (failover rebuilds a cache from the session's history)
      gpuCache.truncate(7)
      refCache.truncate(7)
      const hidden = randomArray(config.dim, 9)
      expect(nmse(await gpuStack.forwardAsync(gpuCache, hidden, 1, inner), refStack.forward(refCache, hidden, 1, inner))).toBeLessThanOrEqual(TOLERANCE.q8_0)
      gpuCache.dispose()
    } finally {
      await source.close()
    }
  })

  it('sessions stepping concurrently on one executor (shared scratch, separate device caches) equal sequential runs', async () => {
    const config = PRESETS.tiny
    const path = join(dir, 'concurrent-f32.gguf')
    await writeGgufModel(path, config, randomWeights(config, 3), { dtype: 'f32', vocab: syntheticVocab() })
    const source = await openModel(path)
    try {
      const ops = new BackendRegistry().ops(['cpu-reference'])
      const model = await LocalModel.load(source, { ops, executor })
      const prompts = [[5, 9, 200, 7], [300, 1, 2], [44, 45, 46, 47, 48, 49]]
      const run = async (tokens: number[]): Promise<Float32Array[]> => {
        const session = model.createSession(16)
        const out = [await session.forwardAsync(tokens)]
        for (let i = 0; i < 3; i++) out.push(await session.forwardAsync([argmax(out[out.length - 1])]))
        session.dispose()
        return out
      }
      const sequential: Float32Array[][] = []
      for (const p of prompts) sequential.push(await run(p))
      const concurrent = await Promise.all(prompts.map(run))
      concurrent.forEach((steps, i) => steps.forEach((logits, j) => expect(logits, `session ${i} step ${j}`).toEqual(sequential[i][j])))
      // steps of one session issued without awaiting each other run in order on the device
      const session = model.createSession(16)
      const pipelined = await Promise.all([session.forwardAsync(prompts[0]), ...[1, 2, 3].map(j => session.forwardAsync([argmax(sequential[0][j - 1])]))])
      pipelined.forEach((logits, j) => expect(logits, `pipelined step ${j}`).toEqual(sequential[0][j]))
      expect(session.position).toBe(prompts[0].length + 3)
      session.dispose()
    } finally {
      await source.close()
    }
  })

  it('a prompt longer than one step holds runs in slices and gives the same logits', async () => {
    const config = PRESETS.tiny
    const path = join(dir, 'slices-q8_0.gguf')
    await writeGgufModel(path, config, randomWeights(config, 4), { dtype: 'q8_0', vocab: syntheticVocab() })
    const sliced = await createWebGpuExecutor({ maxTokensPerStep: 4 })
    const source = await openModel(path)
    try {
      expect(sliced.maxTokensPerStep(config)).toBe(4)
      const ops = new BackendRegistry().ops(['cpu-reference'])
      const tokens = Array.from({ length: 11 }, (_, i) => (i * 53 + 2) % config.vocabSize)
      const whole = (await LocalModel.load(source, { ops, executor })).createSession(16)
      const inSlices = (await LocalModel.load(source, { ops, executor: sliced })).createSession(16)
      expect(await inSlices.forwardAsync(tokens, { allLogits: true })).toEqual(await whole.forwardAsync(tokens, { allLogits: true }))
      expect(await inSlices.forwardAsync([3])).toEqual(await whole.forwardAsync([3]))
    } finally {
      await source.close()
      sliced.close()
    }
  })

  it('decode steps with split attention (flash-decoding) give the logits of single-pass attention', async () => {
    const config = PRESETS.tiny
    const path = join(dir, 'split-f32.gguf')
    await writeGgufModel(path, config, randomWeights(config, 6), { dtype: 'f32', vocab: syntheticVocab() })
    const splitting = await createWebGpuExecutor({ attentionKeysPerSplit: 3 })
    const source = await openModel(path)
    try {
      const ops = new BackendRegistry().ops(['cpu-reference'])
      const tokens = Array.from({ length: 10 }, (_, i) => (i * 31 + 7) % config.vocabSize)
      const single = (await LocalModel.load(source, { ops, executor })).createSession(32)
      const split = (await LocalModel.load(source, { ops, executor: splitting })).createSession(32)
      expect(nmse(await split.forwardAsync(tokens), await single.forwardAsync(tokens))).toBeLessThanOrEqual(1e-10)
      for (const token of [5, 77, 300, 2, 9]) {
        expect(nmse(await split.forwardAsync([token]), await single.forwardAsync([token])), `token ${token}`).toBeLessThanOrEqual(1e-10)
      }
    } finally {
      await source.close()
      splitting.close()
    }
  })

  it('a KV cache larger than one storage binding is refused with a clear error', () => {
    const max = executor.kernels.device.limits.maxStorageBufferBindingSize
    const kvDim = PRESETS.tiny.nKvHeads * PRESETS.tiny.headDim
    expect(() => executor.createCache(PRESETS.tiny, 1, Math.ceil(max / (kvDim * 4)) + 1)).toThrow(/largest storage binding/)
  })
})
