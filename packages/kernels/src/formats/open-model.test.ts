import { mkdir, mkdtemp, open, readFile, rm, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { iterateRandomWeights, llama3RopeFreqFactors, PRESETS, randomWeights, writeGgufModel, writeHfModel } from '../fixtures/random-model.js'
import { ropeInverseFrequencies } from '../model/rope-frequencies.js'
import { dequantize } from '../quant/index.js'
import { syntheticVocab, tokenizerJsonFromVocab } from '../tokenizer/vocab.js'
import type { GgufVocab, ModelConfig, Tensor } from '../types.js'
import { ModelNotFoundError, UnknownTensorError } from './errors.js'
import { readGgufHeader } from './gguf.js'
import { openGgufModel, openModel } from './open-model.js'
import { blockTensorShapes, unpermuteQkRows } from './tensor-names.js'

let dir: string
let vocab: GgufVocab
const tiny = PRESETS.tiny
const weights = new Map<string, Map<string, Float32Array>>()
const weightsOf = (config: ModelConfig, key: string): Map<string, Float32Array> => {
  if (!weights.has(key)) weights.set(key, randomWeights(config, 7))
  return weights.get(key)!
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'open-model-test-'))
  vocab = syntheticVocab()
})
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

const f32 = (t: Tensor): Float32Array => dequantize(t)
/** bitwise equality of two float arrays (fast where toEqual walks element by element) */
const bits = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength)
const same = (a: Float32Array, b: Float32Array | undefined): boolean => b !== undefined && bits(a).equals(bits(b))
function maxAbsDiff (a: Float32Array, b: Float32Array): number {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]))
  return a.length === b.length ? m : Infinity
}
/** HF-convention f32 of a tensor loaded from a llama GGUF (Q/K rows un-permuted) */
function hfView (config: ModelConfig, t: Tensor): Float32Array {
  const data = f32(t)
  if (!/\.attn_[qk]\.(weight|bias)$/.test(t.name)) return data
  const heads = t.name.includes('.attn_q.') ? config.nHeads : config.nKvHeads
  return unpermuteQkRows(data, heads, config.headDim, t.shape.length === 2 ? t.shape[1] : 1)
}

describe('openModel', () => {
  it('rejects missing paths and things that are not models', async () => {
    await expect(openModel(join(dir, 'nope.gguf'))).rejects.toThrow(`no such file or directory: ${join(dir, 'nope.gguf')}`)
    await writeFile(join(dir, 'text.gguf'), 'hello world')
    await expect(openModel(join(dir, 'text.gguf'))).rejects.toThrow(ModelNotFoundError)
    await expect(openModel(join(dir, 'text.gguf'))).rejects.toThrow('not a GGUF file or Hugging Face directory')
    await mkdir(join(dir, 'empty'))
    await expect(openModel(join(dir, 'empty'))).rejects.toThrow('a directory without config.json')
  })

  it('opens a tiny llama GGUF: config, specials, permuted Q/K, exact f32 weights', async () => {
    const path = join(dir, 'tiny-f32.gguf')
    const w = weightsOf(tiny, 'tiny')
    await writeGgufModel(path, tiny, w, { dtype: 'f32', vocab })
    const source = await openModel(path)
    try {
      expect(source.format).toBe('gguf')
      expect(source.config).toEqual({ ...tiny, ropeStyle: 'adjacent', rmsNormEps: Math.fround(tiny.rmsNormEps) }) // GGUF stores f32
      expect(source.specials).toEqual({ bosTokenId: 1, eosTokenId: 2, eosTokenIds: [2], addBos: true, addEos: false, chatTemplate: vocab.chatTemplate })
      expect(source.generation).toEqual({})
      expect(source.metadata['tokenizer.ggml.tokens']).toEqual(vocab.tokens)
      expect(source.tensors.size).toBe(w.size)
      const q = await source.loadTensor('blk.0.attn_q.weight')
      expect(same(f32(q), w.get('blk.0.attn_q.weight'))).toBe(false)
      for (const name of w.keys()) expect(same(hfView(tiny, await source.loadTensor(name)), w.get(name)), name).toBe(true)
      await expect(source.loadTensor('blk.99.attn_q.weight')).rejects.toThrow(UnknownTensorError)
      await expect(source.loadTensor('token_embd.weight', { signal: AbortSignal.abort() })).rejects.toThrow(/abort/i)
    } finally { await source.close() }
    await expect(source.loadTensor('token_embd.weight')).rejects.toThrow('is closed')
  })

  it('writes the same bytes from a Map and from the streaming iterator', async () => {
    await writeGgufModel(join(dir, 'a.gguf'), tiny, weightsOf(tiny, 'tiny'), { dtype: 'q8_0', vocab })
    await writeGgufModel(join(dir, 'b.gguf'), tiny, iterateRandomWeights(tiny, 7), { dtype: 'q8_0', vocab })
    expect((await readFile(join(dir, 'a.gguf'))).equals(await readFile(join(dir, 'b.gguf')))).toBe(true)
    await expect(writeGgufModel(join(dir, 'c.gguf'), tiny, new Map(), { dtype: 'f32', vocab })).rejects.toThrow('weights have no tensor token_embd.weight')
    await expect(writeGgufModel(join(dir, 'c.gguf'), { ...tiny, vocabSize: 10 }, new Map(), { dtype: 'f32', vocab }))
      .rejects.toThrow('vocabulary has')
  })

  it.each([['f16', 1e-3], ['bf16', 8e-3], ['q8_0', 1e-2], ['q4_0', 0.2]] as const)('stores 2-D weights as %s, vectors as f32', async (dtype, tol) => {
    const path = join(dir, `tiny-${dtype}.gguf`)
    const w = weightsOf(tiny, 'tiny')
    await writeGgufModel(path, tiny, w, { dtype, vocab })
    const source = await openModel(path)
    try {
      expect(source.metadata['general.file_type']).toBe({ f16: 1, bf16: 32, q8_0: 7, q4_0: 2 }[dtype])
      for (const name of ['token_embd.weight', 'blk.1.attn_k.weight', 'blk.5.ffn_down.weight', 'output.weight', 'blk.0.attn_norm.weight']) {
        const t = await source.loadTensor(name)
        expect(t.dtype).toBe(name.endsWith('norm.weight') ? 'f32' : dtype)
        const want = w.get(name)!
        const got = hfView(tiny, t)
        let err = 0
        let ref = 0
        for (let i = 0; i < want.length; i++) { err += (got[i] - want[i]) ** 2; ref += want[i] ** 2 }
        expect(Math.sqrt(err / ref), name).toBeLessThan(tol)
      }
    } finally { await source.close() }
  })

  it('does not permute qwen2, and drops output.weight for tied embeddings', async () => {
    const qwen = PRESETS['tiny-qwen2']
    const w = weightsOf(qwen, 'qwen')
    await writeGgufModel(join(dir, 'qwen.gguf'), qwen, w, { dtype: 'f32', vocab })
    const q = await openModel(join(dir, 'qwen.gguf'))
    expect(q.config).toEqual({ ...qwen, rmsNormEps: Math.fround(qwen.rmsNormEps) })
    expect(same(f32(await q.loadTensor('blk.2.attn_k.weight')), w.get('blk.2.attn_k.weight'))).toBe(true)
    expect(same(f32(await q.loadTensor('blk.2.attn_q.bias')), w.get('blk.2.attn_q.bias'))).toBe(true)
    await q.close()
    const tied = PRESETS['tiny-tied']
    await writeGgufModel(join(dir, 'tied.gguf'), tied, randomWeights(tied, 3), { dtype: 'f16', vocab })
    const t = await openModel(join(dir, 'tied.gguf'))
    expect(t.config.tiedEmbeddings).toBe(true)
    expect(t.tensors.has('output.weight')).toBe(false)
    await t.close()
  })

  it('writes Llama 3 RoPE scaling as rope_freqs.weight, equivalent to the HF scaling', async () => {
    const config: ModelConfig = {
      ...tiny,
      ropeTheta: 500000,
      contextLength: 256,
      ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContextLength: 64 }
    }
    await writeGgufModel(join(dir, 'l3.gguf'), config, randomWeights(config, 1), { dtype: 'f32', vocab })
    const source = await openModel(join(dir, 'l3.gguf'))
    try {
      expect(source.config.ropeScaling).toBeUndefined()
      const factors = f32(await source.loadTensor('rope_freqs.weight'))
      expect(factors).toEqual(llama3RopeFreqFactors(config))
      expect(new Set(factors).size).toBeGreaterThan(2) // all three regimes present
      const viaTensor = ropeInverseFrequencies(source.config, factors)
      const viaConfig = ropeInverseFrequencies(config)
      for (let j = 0; j < viaConfig.length; j++) expect(viaTensor[j]).toBeCloseTo(viaConfig[j], 6)
    } finally { await source.close() }
  })
})

describe('partial loading', () => {
  it('reads only the bytes of blocks [2, 4), and works when the rest of the file is garbage', async () => {
    const path = join(dir, 'partial.gguf')
    const w = weightsOf(tiny, 'tiny')
    await writeGgufModel(path, tiny, w, { dtype: 'q8_0', vocab })
    const names = [2, 3].flatMap((b) => blockTensorShapes(tiny, b).map((t) => t.name))
    // overwrite every other tensor's bytes with 0xff so any stray read would show
    const header = await readGgufHeader(path)
    const handle = await open(path, 'r+')
    for (const t of header.tensors) {
      if (!names.includes(t.name)) await handle.write(new Uint8Array(t.byteLength).fill(0xff), 0, t.byteLength, t.offset)
    }
    await handle.close()
    const source = await openGgufModel(path)
    try {
      expect(source.stats.bytesRead).toBe(0)
      let expected = 0
      for (const name of names) {
        const t = await source.loadTensor(name)
        expected += source.tensors.get(name)!.byteLength
        const want = w.get(name)!
        const got = hfView(tiny, t)
        expect(maxAbsDiff(got, want), name).toBeLessThan(0.05)
      }
      expect(source.stats.bytesRead).toBe(expected)
      expect(source.stats.reads).toBe(names.length)
      expect(f32(await source.loadTensor('blk.0.ffn_up.weight')).every(Number.isNaN)).toBe(true)
    } finally { await source.close() }
  })
})

describe('Hugging Face directories', () => {
  const { tokenizerJson, tokenizerConfig } = tokenizerJsonFromVocab(syntheticVocab())
  const generationConfig = { temperature: 0.7, top_p: 0.9, eos_token_id: [2, 5] }

  it('loads the same tensors from single and sharded layouts, equal to the GGUF after un-permuting', async () => {
    const w = weightsOf(tiny, 'tiny')
    await writeHfModel(join(dir, 'hf'), tiny, w, { dtype: 'f32', tokenizerJson, tokenizerConfig, generationConfig })
    await writeHfModel(join(dir, 'hf-sharded'), tiny, (name) => w.get(name)!, { dtype: 'f32', tokenizerJson, tokenizerConfig, sharded: true })
    await writeGgufModel(join(dir, 'hf-twin.gguf'), tiny, w, { dtype: 'f32', vocab })
    const index = JSON.parse(await readFile(join(dir, 'hf-sharded', 'model.safetensors.index.json'), 'utf8'))
    expect(new Set(Object.values(index.weight_map)).size).toBe(2)
    const single = await openModel(join(dir, 'hf'))
    const sharded = await openModel(join(dir, 'hf-sharded'))
    const gguf = await openModel(join(dir, 'hf-twin.gguf'))
    try {
      expect(single.format).toBe('hf')
      expect(single.config).toEqual(tiny)
      expect(sharded.config).toEqual(tiny)
      expect(single.generation).toEqual({ temperature: 0.7, topP: 0.9 })
      expect(single.specials).toMatchObject({ bosTokenId: 1, eosTokenId: 2, eosTokenIds: [2, 5] })
      expect(single.metadata).toMatchObject({ dir: join(dir, 'hf'), generationConfig, tokenizerConfig })
      expect([...sharded.tensors.keys()].sort()).toEqual([...single.tensors.keys()].sort())
      expect([...gguf.tensors.keys()].sort()).toEqual([...single.tensors.keys()].sort())
      for (const name of single.tensors.keys()) {
        const a = await single.loadTensor(name)
        const b = await sharded.loadTensor(name)
        expect([b.dtype, b.shape]).toEqual([a.dtype, a.shape])
        expect(Buffer.from(b.data).equals(Buffer.from(a.data)), name).toBe(true)
        expect(same(f32(a), w.get(name)), name).toBe(true)
        expect(same(hfView(tiny, await gguf.loadTensor(name)), f32(a)), name).toBe(true)
      }
    } finally { await Promise.all([single.close(), sharded.close(), gguf.close()]) }
  })

  it('stores f16 and bf16 checkpoints and maps qwen2 biases', async () => {
    const qwen = PRESETS['tiny-qwen2']
    const w = weightsOf(qwen, 'qwen')
    for (const dtype of ['f16', 'bf16'] as const) {
      const path = join(dir, `hf-qwen-${dtype}`)
      await writeHfModel(path, qwen, w, { dtype, tokenizerJson, tokenizerConfig })
      const source = await openModel(path)
      expect(source.config).toEqual(qwen)
      const b = await source.loadTensor('blk.3.attn_v.bias')
      expect(b.dtype).toBe(dtype)
      const got = f32(b)
      const want = w.get('blk.3.attn_v.bias')!
      expect(maxAbsDiff(got, want)).toBeLessThan(dtype === 'f16' ? 1e-3 : 4e-3)
      await source.close()
    }
  })

  it('rejects broken directories with one-line errors', async () => {
    const w = weightsOf(tiny, 'tiny')
    const path = join(dir, 'hf-broken')
    await writeHfModel(path, tiny, w, { dtype: 'f32', tokenizerJson, tokenizerConfig, sharded: true })
    await unlink(join(path, 'model-00002-of-00002.safetensors'))
    await expect(openModel(path)).rejects.toThrow(/^missing weights file .*model-00002-of-00002\.safetensors$/)
    await writeFile(join(path, 'config.json'), '{"architectures": ["LlamaForCausalLM"], ')
    await expect(openModel(path)).rejects.toThrow(/config\.json is not valid JSON/)
    const small = join(dir, 'hf-small')
    await writeHfModel(small, { ...tiny, nLayers: 1 }, randomWeights({ ...tiny, nLayers: 1 }, 1), { dtype: 'f32', tokenizerJson, tokenizerConfig })
    const cfg = JSON.parse(await readFile(join(small, 'config.json'), 'utf8'))
    await writeFile(join(small, 'config.json'), JSON.stringify({ ...cfg, num_hidden_layers: 2 }))
    await expect(openModel(small)).rejects.toThrow('missing tensor blk.1.attn_norm.weight')
  })
})
