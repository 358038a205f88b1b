import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { ModelSource } from '../types.js'
import {
  GgufTokenizer, ggufVocabFromMetadata, ggufVocabMetadata, loadTokenizer, MissingChatTemplateError, preTokenize,
  syntheticVocab, tokenizerJsonFromVocab
} from './index.js'
import { codePoints } from './unicode.js'

const source = (format: 'gguf' | 'hf', path: string, metadata: Record<string, unknown>): ModelSource => ({
  format,
  path,
  metadata,
  config: undefined as never,
  specials: { eosTokenIds: [], addBos: true, addEos: false },
  generation: {},
  tensors: new Map(),
  loadTensor: async () => { throw new Error('no tensors') },
  close: async () => {}
})

describe('syntheticVocab', () => {
  it('is deterministic, a few hundred SentencePiece tokens with bytes and learned pieces', () => {
    const v = syntheticVocab()
    expect(syntheticVocab()).toEqual(v)
    expect(v.tokens.slice(0, 4)).toEqual(['<unk>', '<s>', '</s>', '<0x00>'])
    expect(v.tokens.length).toBeGreaterThan(300)
    expect(v.tokens.length).toBeLessThan(600)
    expect(v.tokens).toContain('\u2581the')
    expect(new Set(v.tokens).size).toBe(v.tokens.length)
    expect(v.tokenTypes.filter((t) => t === 6)).toHaveLength(256)
  })

  it('encodes with BOS and space prefix, falls back to bytes, and decodes as llama.cpp does', () => {
    const tok = new GgufTokenizer(syntheticVocab())
    const ids = tok.encode('the cat €')
    expect(ids[0]).toBe(1)
    expect(ids).toContain(tok.tokenId('\u2581the'))
    // '€' is not a piece: its three UTF-8 bytes
    expect(ids.slice(-3)).toEqual([0xe2, 0x82, 0xac].map((b) => b + 3))
    // llama_detokenize(remove_special=false): BOS takes the one leading-space strip, so the space stays
    expect(tok.decode(ids)).toBe(' the cat €')
    expect(tok.decode(ids.slice(1))).toBe('the cat €')
    expect(tok.decode(ids, { skipSpecial: false })).toBe('<s> the cat €')
    expect(tok.encode('a</s>b', { addSpecial: false, parseSpecial: true })).toContain(2)
    expect(tok.encode('a</s>b', { addSpecial: false })).not.toContain(2)
  })

  it('renders its chat template; a vocab without one throws', () => {
    const tok = new GgufTokenizer(syntheticVocab())
    expect(tok.applyChatTemplate([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }], { addGenerationPrompt: true }))
      .toBe('<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n')
    const bare = new GgufTokenizer({ ...syntheticVocab(), chatTemplate: undefined })
    expect(() => bare.applyChatTemplate([{ role: 'user', content: 'Hi' }])).toThrow(MissingChatTemplateError)
  })
})

describe('ggufVocabMetadata / ggufVocabFromMetadata', () => {
  it('round-trips a vocabulary through tokenizer.ggml.* entries', () => {
    const v = { ...syntheticVocab(), eotTokenId: 2, paddingTokenId: 0 }
    const entries = ggufVocabMetadata(v)
    expect(entries.map((e) => e.key)).toEqual([
      'tokenizer.ggml.model', 'tokenizer.ggml.tokens', 'tokenizer.ggml.scores', 'tokenizer.ggml.token_type',
      'tokenizer.ggml.bos_token_id', 'tokenizer.ggml.eos_token_id', 'tokenizer.ggml.eot_token_id',
      'tokenizer.ggml.unknown_token_id', 'tokenizer.ggml.padding_token_id', 'tokenizer.ggml.add_bos_token',
      'tokenizer.ggml.add_eos_token', 'tokenizer.ggml.add_space_prefix', 'tokenizer.chat_template'
    ])
    const metadata = Object.fromEntries(entries.map((e) => [e.key, e.type === 'array' ? Array.from(e.value) : e.value]))
    const back = ggufVocabFromMetadata(metadata)
    expect(back).toEqual({ ...v, pre: undefined, merges: undefined, scores: Array.from(Float32Array.from(v.scores as number[])) })
  })
})

describe('pre-tokenizer', () => {
  it('splits as llama.cpp Llama 3 does', () => {
    const re = ["(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"]
    const text = "I'M 1234567 ok!!\n\n  x"
    expect(preTokenize(text, re, codePoints(text))).toEqual(['I', "'M", ' ', '123', '456', '7', ' ok', '!!\n\n', ' ', ' x'])
  })
})

describe('loadTokenizer', () => {
  it('GGUF source: from tokenizer.ggml.* metadata', async () => {
    const metadata = Object.fromEntries(ggufVocabMetadata(syntheticVocab()).map((e) => [e.key, e.value]))
    const tok = await loadTokenizer(source('gguf', 'x.gguf', metadata))
    expect(tok.encode('the cat')).toEqual(new GgufTokenizer(syntheticVocab()).encode('the cat'))
    expect(tok.specials).toMatchObject({ bosTokenId: 1, eosTokenId: 2, addBos: true, addEos: false })
  })

  it('HF source: tokenizer.json in the directory, specials from tokenizer_config.json, BOS not doubled', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tok-hf-'))
    try {
      const { tokenizerJson, tokenizerConfig } = tokenizerJsonFromVocab(syntheticVocab())
      writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson))
      const tok = await loadTokenizer(source('hf', dir, { config: {}, tokenizerConfig, generationConfig: { eos_token_id: 2 }, dir }))
      const gguf = new GgufTokenizer(syntheticVocab())
      for (const text of ['the quick brown fox', ' two  spaces\n', 'naïve €', '<s>x</s>']) {
        expect(tok.encode(text)).toEqual(gguf.encode(text))
        expect(tok.encode(text, { parseSpecial: true })).toEqual(gguf.encode(text, { parseSpecial: true }))
      }
      expect(tok.encode('hi').filter((id) => id === 1)).toHaveLength(1)
      expect(tok.decode(tok.encode('the cat'))).toBe('the cat')
      expect(tok.specials).toMatchObject({ bosTokenId: 1, eosTokenId: 2, eosTokenIds: [2], addBos: true })
      expect(tok.applyChatTemplate([{ role: 'user', content: 'Hi' }])).toBe('<|user|>\nHi</s>\n')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
