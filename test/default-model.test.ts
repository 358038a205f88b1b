/**
 * The embedded default model (packages/kernels/default-model: a 4M-parameter Llama trained on the King James Bible
 * by scripts/train-default-model/, f16 weights as a Hugging Face directory and as GGUF):
 * - both files load, with the same config;
 * - the GGUF tokenizer (llama.cpp's algorithm, ours), the tokenizer.json one (@huggingface/tokenizers) and
 *   llama.cpp's own give the same ids;
 * - our logits on the HF directory equal those on the GGUF file (same f16 weights; only the RoPE pairing and the
 *   permuted Q/K rows differ): within 1e-3 max abs;
 * - our logits on the GGUF are llama.cpp's within 1e-2 max abs with the same argmax everywhere (both engines round
 *   activations to f16 for f16 weights, see model-oracle.test.ts);
 * - greedy generation from "In the beginning God" equals llama.cpp's greedy output on the GGUF, token for token,
 *   from the GGUF and from the HF directory.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { defaultModelPath, loadTokenizer, openModel } from '@swarm/kernels'
import type { Tokenizer } from '@swarm/kernels'
import { disposeLlamaCpp, llamaCppGreedy, llamaCppLogits, llamaCppTokenize } from './oracle/llama-cpp.js'
import { compareLogits, fmt, ourGreedy, ourLogits } from './oracle/model-fixtures.js'

const GGUF = defaultModelPath()
const HF = defaultModelPath('hf')
const SENTENCES = [
  'In the beginning God created the heaven and the earth.',
  'And the LORD spake unto Moses, saying,\nSpeak unto the children of Israel.',
  "Blessed are the poor in spirit: for theirs is the kingdom of heaven. (Matthew 5:3) Don't panic!",
  'The swarm of 1024 nodes shares 3.5 GB of weights, and it works.',
  '  leading spaces,\ttabs\n\nand blank lines  '
]
const PROMPT = 'In the beginning God'
const GREEDY_TOKENS = 32

async function tokenizerOf (path: string): Promise<Tokenizer> {
  const source = await openModel(path)
  try {
    return await loadTokenizer(source)
  } finally {
    await source.close()
  }
}

afterAll(async () => {
  await disposeLlamaCpp()
})

describe('the embedded default model', () => {
  it('loads as GGUF and as a Hugging Face directory with the same config', async () => {
    const gguf = await openModel(GGUF)
    const hf = await openModel(HF)
    try {
      expect(gguf.format).toBe('gguf')
      expect(hf.format).toBe('hf')
      // GGUF stores rms_norm_eps as f32
      const { ropeStyle: a, name: _n1, rmsNormEps: e1, ...ggufConfig } = gguf.config
      const { ropeStyle: b, name: _n2, rmsNormEps: e2, ...hfConfig } = hf.config
      expect(ggufConfig).toEqual(hfConfig)
      expect(e1).toBe(Math.fround(e2))
      expect([a, b]).toEqual(['adjacent', 'halves'])
      expect(gguf.config).toMatchObject({ architecture: 'llama', nLayers: 4, dim: 256, vocabSize: 4096, tiedEmbeddings: true })
      // sampling defaults: generation_config.json, and llama.cpp's general.sampling.* keys in the GGUF (f32)
      expect(hf.generation).toEqual({ temperature: 0.8, topK: 40, topP: 0.95, repetitionPenalty: 1.1 })
      expect(gguf.generation).toEqual({ temperature: Math.fround(0.8), topK: 40, topP: Math.fround(0.95), repetitionPenalty: Math.fround(1.1) })
    } finally {
      await gguf.close()
      await hf.close()
    }
  })

  it('GGUF, tokenizer.json and llama.cpp tokenizers give the same ids', async () => {
    const fromGguf = await tokenizerOf(GGUF)
    const fromHf = await tokenizerOf(HF)
    for (const text of SENTENCES) {
      const ids = fromGguf.encode(text)
      expect(ids[0]).toBe(fromGguf.specials.bosTokenId)
      expect(fromHf.encode(text)).toEqual(ids)
      expect(await llamaCppTokenize(GGUF, text, { addSpecial: true })).toEqual(ids)
      expect(fromGguf.decode(ids)).toBe(text)
      expect(fromHf.decode(ids)).toBe(text)
    }
  })

  it('logits from the HF directory equal those from the GGUF (1e-3) and llama.cpp\'s (1e-2, same argmax)', async () => {
    const tokens = (await tokenizerOf(GGUF)).encode(SENTENCES[0] + ' ' + SENTENCES[1])
    const ours = await ourLogits(GGUF, tokens)
    const hf = compareLogits(await ourLogits(HF, tokens), ours)
    const llama = compareLogits(ours, await llamaCppLogits(GGUF, tokens))
    console.log(`default model, ${tokens.length} positions: max |HF - GGUF| ${fmt(hf.maxAbsDiff)}; ` +
      `max |ours - llama.cpp| ${fmt(llama.maxAbsDiff)} (median position ${fmt(llama.medianPosition)})`)
    expect(hf.argmaxMismatches).toEqual([])
    expect(hf.maxAbsDiff).toBeLessThan(1e-3)
    expect(llama.argmaxMismatches).toEqual([])
    expect(llama.maxAbsDiff).toBeLessThan(1e-2)
  })

  it(`greedy continuation of "${PROMPT}" equals llama.cpp's (GGUF and HF directory)`, async () => {
    const tokenizer = await tokenizerOf(GGUF)
    const prompt = tokenizer.encode(PROMPT)
    const expected = await llamaCppGreedy(GGUF, prompt, GREEDY_TOKENS)
    const text = tokenizer.decode(expected)
    console.log(`llama.cpp greedy: ${JSON.stringify(PROMPT + text)}`)
    expect(await ourGreedy(GGUF, prompt, GREEDY_TOKENS)).toEqual(expected)
    expect(await ourGreedy(HF, prompt, GREEDY_TOKENS)).toEqual(expected)
    expect(text).toMatch(/^[ A-Za-z,.;:'?!()\n-]+$/) // plain English words, as in the corpus
  })
})
