/**
 * GGUF vocabularies: to and from GGUF metadata (`tokenizer.ggml.*`), to and from Hugging Face tokenizer.json, and
 * a small deterministic SentencePiece-style vocabulary for tiny test models.
 */
import type { GgufEntry, GgufVocab } from '../types.js'
import { InvalidVocabError, UnsupportedTokenizerError } from './errors.js'
import { chatTemplateFromConfig, specialsFromHfConfig, tokenContent } from './hf-tokenizer.js'
import { bpePreTokenizer } from './pretokenize.js'

type Json = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

/** GGUF token types (llama.cpp's llama_token_type) */
export const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const

/** tokenizer.ggml.* (and tokenizer.chat_template) entries of `vocab`, for the GGUF writer */
export function ggufVocabMetadata (vocab: GgufVocab): GgufEntry[] {
  const entries: GgufEntry[] = [
    { key: 'tokenizer.ggml.model', type: 'string', value: vocab.model }
  ]
  if (vocab.pre !== undefined) entries.push({ key: 'tokenizer.ggml.pre', type: 'string', value: vocab.pre })
  entries.push({ key: 'tokenizer.ggml.tokens', type: 'array', itemType: 'string', value: vocab.tokens })
  if (vocab.scores !== undefined) entries.push({ key: 'tokenizer.ggml.scores', type: 'array', itemType: 'f32', value: vocab.scores })
  entries.push({ key: 'tokenizer.ggml.token_type', type: 'array', itemType: 'i32', value: vocab.tokenTypes })
  if (vocab.merges !== undefined) entries.push({ key: 'tokenizer.ggml.merges', type: 'array', itemType: 'string', value: vocab.merges })
  const id = (key: string, value: number | undefined): void => {
    if (value !== undefined) entries.push({ key, type: 'u32', value })
  }
  id('tokenizer.ggml.bos_token_id', vocab.bosTokenId)
  id('tokenizer.ggml.eos_token_id', vocab.eosTokenId)
  id('tokenizer.ggml.eot_token_id', vocab.eotTokenId)
  id('tokenizer.ggml.unknown_token_id', vocab.unknownTokenId)
  id('tokenizer.ggml.padding_token_id', vocab.paddingTokenId)
  entries.push({ key: 'tokenizer.ggml.add_bos_token', type: 'bool', value: vocab.addBos })
  entries.push({ key: 'tokenizer.ggml.add_eos_token', type: 'bool', value: vocab.addEos })
  if (vocab.addSpacePrefix !== undefined) entries.push({ key: 'tokenizer.ggml.add_space_prefix', type: 'bool', value: vocab.addSpacePrefix })
  if (vocab.chatTemplate !== undefined) entries.push({ key: 'tokenizer.chat_template', type: 'string', value: vocab.chatTemplate })
  return entries
}

const toNumbers = (v: unknown): number[] | undefined =>
  v === undefined || v === null ? undefined : Array.from(v as ArrayLike<number | bigint>, Number)
const toId = (v: unknown): number | undefined =>
  typeof v === 'number' || typeof v === 'bigint' ? Number(v) : undefined

/**
 * The vocabulary in raw GGUF metadata. Where a key is missing, llama.cpp's defaults apply: add_bos_token true
 * for 'llama' and for the Llama 3 family of pre-tokenizers, false otherwise.
 */
export function ggufVocabFromMetadata (metadata: Record<string, unknown>): GgufVocab {
  const model = metadata['tokenizer.ggml.model']
  if (model !== 'llama' && model !== 'gpt2') {
    throw new UnsupportedTokenizerError(`unsupported tokenizer.ggml.model: '${String(model)}' (supported: llama, gpt2)`)
  }
  const tokens = metadata['tokenizer.ggml.tokens']
  if (!Array.isArray(tokens)) throw new InvalidVocabError('GGUF metadata has no tokenizer.ggml.tokens')
  const pre = typeof metadata['tokenizer.ggml.pre'] === 'string' ? metadata['tokenizer.ggml.pre'] as string : undefined
  let defaultAddBos = model === 'llama'
  if (model === 'gpt2') {
    try { defaultAddBos = bpePreTokenizer(pre).addBosDefault } catch { defaultAddBos = false }
  }
  const bool = (key: string): boolean | undefined => typeof metadata[key] === 'boolean' ? metadata[key] as boolean : undefined
  const merges = metadata['tokenizer.ggml.merges']
  return {
    model,
    pre,
    tokens: tokens as string[],
    scores: toNumbers(metadata['tokenizer.ggml.scores']),
    tokenTypes: toNumbers(metadata['tokenizer.ggml.token_type']) ?? [],
    merges: Array.isArray(merges) ? merges as string[] : undefined,
    bosTokenId: toId(metadata['tokenizer.ggml.bos_token_id']),
    eosTokenId: toId(metadata['tokenizer.ggml.eos_token_id']),
    eotTokenId: toId(metadata['tokenizer.ggml.eot_token_id']),
    unknownTokenId: toId(metadata['tokenizer.ggml.unknown_token_id']),
    paddingTokenId: toId(metadata['tokenizer.ggml.padding_token_id']),
    addBos: bool('tokenizer.ggml.add_bos_token') ?? defaultAddBos,
    addEos: bool('tokenizer.ggml.add_eos_token') ?? false,
    addSpacePrefix: bool('tokenizer.ggml.add_space_prefix'),
    chatTemplate: typeof metadata['tokenizer.chat_template'] === 'string' ? metadata['tokenizer.chat_template'] as string : undefined
  }
}

// synthetic vocabulary ----------------------------------------------------------------------------------------------

/** a few sentences the synthetic vocabulary's merges are learned from */
const SYNTHETIC_CORPUS = [
  'the quick brown fox jumps over the lazy dog and the cat sat on the mat',
  'there is a time for everything and a season for every activity under the heavens',
  'hello world this is a small model that speaks a little english with its own tokenizer',
  'in the beginning the network was small and the nodes were few but they shared the work',
  'what is the answer to the question that nobody asked and why does it matter at all',
  'we tested the swarm with many peers and it generated the same tokens every time'
]
const SYNTHETIC_MERGES = 200
const SYNTHETIC_CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"

/**
 * A deterministic SentencePiece-style ('llama') vocabulary of about 500 tokens: <unk>, <s>, </s>, the 256 byte
 * tokens <0x00>..<0xFF>, single characters, then pieces learned by byte-pair merging a few fixed English sentences
 * ('▁the', 'th', ...), scored -rank so llama.cpp's score-driven merges replay them. Has a Zephyr-style chat template.
 */
export function syntheticVocab (): GgufVocab {
  const tokens: string[] = ['<unk>', '<s>', '</s>']
  const tokenTypes: number[] = [TOKEN_TYPE.unknown, TOKEN_TYPE.control, TOKEN_TYPE.control]
  const scores: number[] = [0, 0, 0]
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)
    tokenTypes.push(TOKEN_TYPE.byte)
    scores.push(0)
  }
  const chars = '\u2581abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?\'"-:;()'
  for (const [i, ch] of [...chars].entries()) {
    tokens.push(ch)
    tokenTypes.push(TOKEN_TYPE.normal)
    scores.push(-1e6 - i)
  }
  // learn merges: words as '▁word' symbol sequences; most frequent adjacent pair first, ties by text order
  const words = SYNTHETIC_CORPUS.join(' ').split(' ').map((w) => ['\u2581', ...w])
  const known = new Set(tokens)
  for (let rank = 0; rank < SYNTHETIC_MERGES; rank++) {
    const counts = new Map<string, number>()
    for (const w of words) for (let i = 0; i + 1 < w.length; i++) {
      const key = `${w[i]} ${w[i + 1]}`
      counts.set(key, (counts.get(key) ?? 0) + 1)
    }
    let best: string | undefined
    let bestCount = 0
    for (const [key, count] of counts) {
      const merged = key.replace(' ', '')
      if (known.has(merged)) continue
      if (count > bestCount || (count === bestCount && best !== undefined && key < best)) { best = key; bestCount = count }
    }
    if (best === undefined) break
    const [a, b] = best.split(' ')
    for (const w of words) for (let i = 0; i + 1 < w.length; i++) {
      if (w[i] === a && w[i + 1] === b) w.splice(i, 2, a + b)
    }
    tokens.push(a + b)
    known.add(a + b)
    tokenTypes.push(TOKEN_TYPE.normal)
    scores.push(-rank)
  }
  return {
    model: 'llama',
    tokens,
    scores,
    tokenTypes,
    bosTokenId: 1,
    eosTokenId: 2,
    unknownTokenId: 0,
    addBos: true,
    addEos: false,
    addSpacePrefix: true,
    chatTemplate: SYNTHETIC_CHAT_TEMPLATE
  }
}

// Hugging Face tokenizer.json <-> GGUF vocab --------------------------------------------------------------------------

/** original (tokenizer.json) regex of each supported byte-level pre-tokenizer */
const HF_SPLIT_REGEX: Record<string, string> = {
  'llama-bpe': "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  qwen2: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
}
HF_SPLIT_REGEX.llama3 = HF_SPLIT_REGEX['llama-bpe']

/**
 * An equivalent Hugging Face tokenizer.json (and tokenizer_config.json) for `vocab`. 'llama' becomes a byte-fallback
 * BPE whose merges are every split of each piece into two vocab entries, ranked by the piece's score (how Hugging
 * Face converts SentencePiece models), so it tokenizes as llama.cpp's score-driven merges do. 'gpt2' supports the
 * 'gpt-2', 'llama-bpe' and 'qwen2' pre-tokenizers.
 */
export function tokenizerJsonFromVocab (vocab: GgufVocab): { tokenizerJson: Json, tokenizerConfig: Json } {
  const addedTokens = vocab.tokens.flatMap((content, id) => {
    const type = vocab.tokenTypes[id]
    if (type !== TOKEN_TYPE.control && type !== TOKEN_TYPE.unknown && type !== TOKEN_TYPE.userDefined) return []
    return [{ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: type !== TOKEN_TYPE.userDefined }]
  })
  const addedIds = new Set(addedTokens.map((t) => t.id))
  const vocabMap: Record<string, number> = {}
  vocab.tokens.forEach((t, id) => { if (!(t in vocabMap)) vocabMap[t] = id })
  const text = (id: number | undefined): string | undefined => id === undefined ? undefined : vocab.tokens[id]
  const bos = text(vocab.bosTokenId)
  const eos = text(vocab.eosTokenId)
  const template = (): Json | null => {
    const single: Json[] = []
    const specialTokens: Json = {}
    if (vocab.addBos && bos !== undefined) { single.push({ SpecialToken: { id: bos, type_id: 0 } }); specialTokens[bos] = { id: bos, ids: [vocab.bosTokenId], tokens: [bos] } }
    single.push({ Sequence: { id: 'A', type_id: 0 } })
    if (vocab.addEos && eos !== undefined) { single.push({ SpecialToken: { id: eos, type_id: 0 } }); specialTokens[eos] = { id: eos, ids: [vocab.eosTokenId], tokens: [eos] } }
    return single.length === 1 ? null : { type: 'TemplateProcessing', single, pair: [...single, ...single.map((s) => s.Sequence !== undefined ? { Sequence: { id: 'B', type_id: 1 } } : s)], special_tokens: specialTokens }
  }
  const tokenizerConfig: Json = {
    add_bos_token: vocab.addBos,
    add_eos_token: vocab.addEos,
    bos_token: bos ?? null,
    eos_token: eos ?? null,
    unk_token: text(vocab.unknownTokenId) ?? null,
    pad_token: text(vocab.paddingTokenId) ?? null,
    clean_up_tokenization_spaces: false,
    model_max_length: 1e30
  }
  if (vocab.chatTemplate !== undefined) tokenizerConfig.chat_template = vocab.chatTemplate

  if (vocab.model === 'llama') {
    const scores = vocab.scores ?? vocab.tokens.map(() => 0)
    // pieces in merge priority: higher score first, then lower id (the order llama.cpp's queue prefers)
    const pieces = vocab.tokens.map((_, id) => id)
      .filter((id) => vocab.tokenTypes[id] === TOKEN_TYPE.normal || vocab.tokenTypes[id] === TOKEN_TYPE.userDefined)
      .sort((a, b) => scores[b] - scores[a] || a - b)
    const merges: string[] = []
    for (const id of pieces) {
      const piece = [...vocab.tokens[id]]
      for (let i = 1; i < piece.length; i++) {
        const left = piece.slice(0, i).join('')
        const right = piece.slice(i).join('')
        if (left in vocabMap && right in vocabMap) merges.push(`${left} ${right}`)
      }
    }
    const prefix = vocab.addSpacePrefix ?? true
    return {
      tokenizerJson: {
        version: '1.0',
        truncation: null,
        padding: null,
        added_tokens: addedTokens,
        normalizer: {
          type: 'Sequence',
          normalizers: [
            ...(prefix ? [{ type: 'Prepend', prepend: '\u2581' }] : []),
            { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' }
          ]
        },
        pre_tokenizer: null,
        post_processor: template(),
        decoder: {
          type: 'Sequence',
          decoders: [
            { type: 'Replace', pattern: { String: '\u2581' }, content: ' ' },
            { type: 'ByteFallback' },
            { type: 'Fuse' },
            ...(prefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : [])
          ]
        },
        model: {
          type: 'BPE',
          dropout: null,
          unk_token: text(vocab.unknownTokenId) ?? null,
          continuing_subword_prefix: null,
          end_of_word_suffix: null,
          fuse_unk: true,
          byte_fallback: true,
          vocab: vocabMap,
          merges
        }
      },
      tokenizerConfig: { ...tokenizerConfig, legacy: true, tokenizer_class: 'LlamaTokenizer' }
    }
  }

  const pre = vocab.pre ?? 'default'
  const splitRegex = HF_SPLIT_REGEX[pre]
  if (splitRegex === undefined && pre !== 'gpt-2') {
    throw new UnsupportedTokenizerError(`no tokenizer.json equivalent for pre-tokenizer '${pre}' (supported: gpt-2, llama-bpe, llama3, qwen2)`)
  }
  const preTokenizer = splitRegex === undefined
    ? { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }
    : {
        type: 'Sequence',
        pretokenizers: [
          { type: 'Split', pattern: { Regex: splitRegex }, behavior: 'Isolated', invert: false },
          { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }
        ]
      }
  return {
    tokenizerJson: {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: addedTokens,
      normalizer: null,
      pre_tokenizer: preTokenizer,
      post_processor: template() ?? { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: bpePreTokenizer(pre).ignoreMerges,
        vocab: Object.fromEntries(Object.entries(vocabMap).filter(([, id]) => !addedIds.has(id))),
        merges: vocab.merges ?? []
      }
    },
    tokenizerConfig: { ...tokenizerConfig, clean_up_tokenization_spaces: bpePreTokenizer(pre).cleanSpaces, tokenizer_class: 'PreTrainedTokenizerFast' }
  }
}

const BYTE_TOKEN = /^<0x[0-9A-F]{2}>$/

/**
 * A GGUF vocabulary from a Hugging Face tokenizer.json, as llama.cpp's converter would write it.
 * - 'llama' (SentencePiece-converted BPE with byte fallback, e.g. Llama 2): tokens by id; score = -(rank of the
 *   first merge creating the token), so llama.cpp's score-driven merges replay the BPE merges; pieces no merge
 *   creates score below every merged one; <0xNN> are byte tokens (6), <unk> unknown (2), special added tokens
 *   control (3), other added tokens user-defined (4).
 * - 'gpt2' (byte-level BPE, e.g. Llama 3): tokens and merges as they are, pre 'llama-bpe' unless `pre` says
 *   otherwise; special added tokens control (3), other added tokens user-defined (4).
 */
export function ggufVocabFromTokenizerJson (tokenizerJson: Json, tokenizerConfig: Json, kind: 'llama' | 'gpt2', options: { pre?: string } = {}): GgufVocab {
  const model = tokenizerJson.model
  if (model?.type !== 'BPE') throw new UnsupportedTokenizerError(`tokenizer.json model type '${String(model?.type)}' is not BPE`)
  const added = (tokenizerJson.added_tokens ?? []) as Json[]
  let size = 0
  for (const id of Object.values(model.vocab) as number[]) size = Math.max(size, id + 1)
  for (const t of added) size = Math.max(size, t.id + 1)
  const tokens: string[] = new Array(size)
  for (const [text, id] of Object.entries(model.vocab) as Array<[string, number]>) tokens[id] = text
  for (const t of added) tokens[t.id] = t.content
  for (let i = 0; i < size; i++) {
    if (tokens[i] === undefined) tokens[i] = `[PAD${i}]` // gap in the ids: llama.cpp's converter pads the same way
  }
  const merges: string[] = (model.merges as Array<string | [string, string]>).map((m) => typeof m === 'string' ? m : `${m[0]} ${m[1]}`)
  const specials = specialsFromHfConfig(tokenizerJson, tokenizerConfig)
  const unk = tokenContent(tokenizerConfig.unk_token) ?? (typeof model.unk_token === 'string' ? model.unk_token : undefined)
  const addedById = new Map(added.map((t) => [t.id as number, t]))
  const tokenTypes = tokens.map((t, id) => {
    const a = addedById.get(id)
    if (a !== undefined) return t === unk ? TOKEN_TYPE.unknown : a.special === true ? TOKEN_TYPE.control : TOKEN_TYPE.userDefined
    if (t === unk) return TOKEN_TYPE.unknown
    if (kind === 'llama' && BYTE_TOKEN.test(t)) return TOKEN_TYPE.byte
    if (t.startsWith('[PAD')) return TOKEN_TYPE.unused
    return TOKEN_TYPE.normal
  })
  const common = {
    tokens,
    tokenTypes,
    bosTokenId: specials.bosTokenId,
    eosTokenId: specials.eosTokenId,
    unknownTokenId: unk !== undefined ? tokens.indexOf(unk) : undefined,
    paddingTokenId: specials.padTokenId,
    addBos: specials.addBos,
    addEos: specials.addEos,
    chatTemplate: chatTemplateFromConfig(tokenizerConfig)
  }
  if (common.unknownTokenId === -1) common.unknownTokenId = undefined
  if (kind === 'llama') {
    const rankOf = new Map<string, number>()
    merges.forEach((m, rank) => {
      const merged = m.replace(' ', '')
      if (!rankOf.has(merged)) rankOf.set(merged, rank)
    })
    const scores = tokens.map((t, id) => {
      if (tokenTypes[id] !== TOKEN_TYPE.normal) return 0
      const rank = rankOf.get(t)
      return rank !== undefined ? -rank : -(merges.length + id)
    })
    const prepends = JSON.stringify(tokenizerJson.normalizer ?? {}).includes('"Prepend"')
    return { model: 'llama', scores, addSpacePrefix: prepends, ...common }
  }
  return { model: 'gpt2', pre: options.pre ?? 'llama-bpe', merges, ...common }
}
