/**
 * The tokenizers of a GGUF vocabulary, ported from llama.cpp's src/llama-vocab.cpp so that ids match llama.cpp's
 * exactly: 'llama' is llm_tokenizer_spm (score-driven bigram merges, <0xNN> byte fallback), 'gpt2' is
 * llm_tokenizer_bpe (regex pre-tokenizer, byte-level, merge ranks). Control/user-defined tokens are split out of
 * the text first (tokenizer_st_partition). Decoding is llama_detokenize(remove_special = false).
 *
 * Not ported: per-model LSTRIP/RSTRIP token attributes (llama.cpp sets them by model name for phi-3, jina and
 * modern-bert only).
 */
import type { GgufVocab, TokenizerSpecials } from '../types.js'
import type { ChatMessage, Tokenizer } from '../tokenizer-types.js'
import { renderChatTemplate } from './chat-template.js'
import { InvalidVocabError, UnsupportedTokenizerError } from './errors.js'
import { bpePreTokenizer, preTokenize, type BpePreTokenizer } from './pretokenize.js'
import { byteEncode, codePoints, UNICODE_TO_BYTE, utf8Decode, utf8Encode, wellFormed } from './unicode.js'

/** llama_token_attr */
const ATTR_UNKNOWN = 1 << 0
const ATTR_UNUSED = 1 << 1
const ATTR_NORMAL = 1 << 2
const ATTR_CONTROL = 1 << 3
const ATTR_USER_DEFINED = 1 << 4
const ATTR_BYTE = 1 << 5

/** GGUF token type -> attribute (llama_vocab::impl::load) */
const TYPE_TO_ATTR: Record<number, number> = {
  1: ATTR_NORMAL, 2: ATTR_UNKNOWN, 3: ATTR_CONTROL, 4: ATTR_USER_DEFINED, 5: ATTR_UNUSED, 6: ATTR_BYTE
}

/** token texts llama.cpp auto-detects as EOT, in its order of preference */
const EOT_TEXTS = ['<|eot_id|>', '<|im_end|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '<|end_of_text|>', '<EOT>', '_<EOT>', '[EOT]', '<｜end▁of▁sentence｜>', '<end_of_utterance>']
/** token texts llama.cpp adds to its end-of-generation set */
const EOG_TEXTS = new Set(['<|eot_id|>', '<|im_end|>', '<|end|>', '<|return|>', '<|call|>', '<|flush|>', '<|calls|>', '<end_of_turn>', '<|endoftext|>', '</s>', '<|eom_id|>', '<EOT>', '_<EOT>', '[EOT]', '[EOS]', '<|end_of_text|>', '<end_of_utterance>', '<eos>', '<turn|>', '<|tool_response>', '<｜end▁of▁sentence｜>', '[e~['])

type Fragment = { text: string } | { token: number }

/** A binary heap; `before(a, b)` true when a pops first. */
class Heap<T> {
  private readonly items: T[] = []
  constructor (private readonly before: (a: T, b: T) => boolean) {}
  get size (): number { return this.items.length }
  push (item: T): void {
    const a = this.items
    a.push(item)
    let i = a.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!this.before(a[i], a[p])) break
      ;[a[i], a[p]] = [a[p], a[i]]
      i = p
    }
  }
  pop (): T {
    const a = this.items
    const top = a[0]
    const last = a.pop() as T
    if (a.length > 0) {
      a[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < a.length && this.before(a[l], a[m])) m = l
        if (r < a.length && this.before(a[r], a[m])) m = r
        if (m === i) break
        ;[a[i], a[m]] = [a[m], a[i]]
        i = m
      }
    }
    return top
  }
}

interface Symbol { start: number, n: number, prev: number, next: number }

/** Text <-> ids with llama.cpp's algorithms over a GGUF vocabulary. */
export class GgufTokenizer implements Tokenizer {
  readonly vocabSize: number
  readonly specials: TokenizerSpecials
  readonly vocab: GgufVocab
  private readonly tokenToId = new Map<string, number>()
  private readonly texts: string[]
  private readonly attrs: Uint8Array
  private readonly scores: Float32Array
  private readonly bpeRanks = new Map<string, Map<string, number>>()
  private readonly pre?: BpePreTokenizer
  private readonly specialCache: number[]
  private readonly bosId?: number
  private readonly eosId?: number
  private readonly addBos: boolean
  private readonly addEos: boolean
  private readonly addSpacePrefix: boolean
  private readonly cleanSpaces: boolean

  constructor (vocab: GgufVocab) {
    if (vocab.model !== 'llama' && vocab.model !== 'gpt2') {
      throw new UnsupportedTokenizerError(`unknown tokenizer model: '${String(vocab.model)}'`)
    }
    if (vocab.tokens.length === 0) throw new InvalidVocabError('vocabulary has no tokens')
    this.vocab = vocab
    const n = vocab.tokens.length
    this.vocabSize = n
    this.texts = vocab.tokens.map((t, i) => t === '' ? `[EMPTY_${i}]` : t)
    this.texts.forEach((t, i) => this.tokenToId.set(t, i))
    this.scores = Float32Array.from(vocab.scores ?? new Array<number>(n).fill(0))
    this.attrs = new Uint8Array(n).fill(ATTR_NORMAL)
    if (vocab.tokenTypes.length > 0) {
      for (let i = 0; i < n; i++) this.attrs[i] = TYPE_TO_ATTR[vocab.tokenTypes[i]] ?? 0
    }
    const inRange = (id: number | undefined): number | undefined => id !== undefined && id >= 0 && id < n ? id : undefined
    let cleanSpaces: boolean
    let addBos: boolean
    if (vocab.model === 'llama') {
      this.bosId = inRange(vocab.bosTokenId ?? 1)
      this.eosId = inRange(vocab.eosTokenId ?? 2)
      addBos = true
      this.addSpacePrefix = vocab.addSpacePrefix ?? true
      cleanSpaces = false
    } else {
      this.pre = bpePreTokenizer(vocab.pre)
      for (const [rank, merge] of (vocab.merges ?? []).entries()) {
        const pos = merge.indexOf(' ', 1)
        const [first, second] = pos === -1 ? ['', ''] : [merge.slice(0, pos), merge.slice(pos + 1)]
        let inner = this.bpeRanks.get(first)
        if (inner === undefined) this.bpeRanks.set(first, inner = new Map())
        if (!inner.has(second)) inner.set(second, rank)
      }
      this.bosId = inRange(vocab.bosTokenId ?? 11)
      this.eosId = inRange(vocab.eosTokenId ?? 11)
      addBos = this.pre.addBosDefault
      this.addSpacePrefix = vocab.addSpacePrefix ?? false
      cleanSpaces = this.pre.cleanSpaces
    }
    // GgufVocab carries add_bos/add_eos explicitly (the GGUF keys override llama.cpp's per-model defaults)
    this.addBos = vocab.addBos ?? addBos
    this.addEos = vocab.addEos ?? false
    this.cleanSpaces = cleanSpaces

    // EOT auto-detection and the end-of-generation set, as llama.cpp builds them
    let eotId = inRange(vocab.eotTokenId)
    if (eotId === undefined) {
      for (const text of EOT_TEXTS) {
        const id = this.tokenToId.get(text)
        if (id !== undefined) { eotId = id; break }
      }
    }
    const eog = new Set<number>()
    for (const [text, id] of this.tokenToId) {
      if (EOG_TEXTS.has(text)) eog.add(id)
    }
    for (const id of [eotId, ...eog]) {
      if (id !== undefined) this.attrs[id] |= ATTR_CONTROL
    }
    if (this.eosId !== undefined) eog.add(this.eosId)
    if (eotId !== undefined) eog.add(eotId)

    // special tokens, longest text first (llama.cpp's std::sort is unstable; ties here go by id)
    this.specialCache = []
    for (let id = 0; id < n; id++) {
      if ((this.attrs[id] & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN)) !== 0) this.specialCache.push(id)
    }
    this.specialCache.sort((a, b) => this.texts[b].length - this.texts[a].length || a - b)

    this.specials = {
      bosTokenId: this.bosId,
      eosTokenId: this.eosId,
      eosTokenIds: [...eog].sort((a, b) => a - b),
      padTokenId: inRange(vocab.paddingTokenId),
      addBos: this.addBos,
      addEos: this.addEos,
      chatTemplate: vocab.chatTemplate
    }
  }

  encode (text: string, options: { addSpecial?: boolean, parseSpecial?: boolean } = {}): number[] {
    const addSpecial = options.addSpecial ?? true
    const fragments = this.partition(wellFormed(text), options.parseSpecial ?? false)
    const output: number[] = []
    if (addSpecial && this.addBos) output.push(this.requireId(this.bosId, 'BOS'))
    if (this.vocab.model === 'llama') {
      let prevSpecial = true // prefix with a space if first
      for (const f of fragments) {
        if ('text' in f) {
          const t = (this.addSpacePrefix && prevSpecial ? ' ' : '') + f.text
          this.spm(t.replaceAll(' ', '\u2581'), output)
          prevSpecial = false
        } else {
          output.push(f.token)
          prevSpecial = true
        }
      }
    } else {
      for (const f of fragments) {
        if ('text' in f) this.bpe(f.text, output)
        else output.push(f.token)
      }
    }
    if (addSpecial && this.addEos) output.push(this.requireId(this.eosId, 'EOS'))
    return output
  }

  /**
   * llama_detokenize(ids, remove_special = false, unparse_special = !skipSpecial): with add_space_prefix the first
   * piece loses one leading space (a BOS first takes that turn, so "<s> Hello" keeps its space, as in llama.cpp).
   */
  decode (ids: number[], options: { skipSpecial?: boolean } = {}): string {
    const special = !(options.skipSpecial ?? true)
    const bytes: number[] = []
    let removeSpace = this.addSpacePrefix
    for (const id of ids) {
      const piece = this.piece(id, special)
      let start = 0
      if (removeSpace && piece.length > 0 && piece[0] === 0x20) start = 1
      for (let i = start; i < piece.length; i++) bytes.push(piece[i])
      removeSpace = false
    }
    return utf8Decode(Uint8Array.from(this.cleanSpaces ? cleanSpacesPasses(bytes) : bytes))
  }

  /** bytes of one token as llama_token_to_piece gives them */
  piece (id: number, special = true): Uint8Array {
    if (id < 0 || id >= this.vocabSize) return new Uint8Array(0)
    const attr = this.attrs[id]
    if (!special && (attr & (ATTR_UNKNOWN | ATTR_CONTROL)) !== 0) return new Uint8Array(0)
    const text = this.texts[id]
    if ((attr & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED)) !== 0) return utf8Encode(text)
    if ((attr & ATTR_NORMAL) !== 0) {
      if (this.vocab.model === 'llama') return utf8Encode(text.replaceAll('\u2581', ' '))
      const out: number[] = []
      for (const ch of text) {
        const b = UNICODE_TO_BYTE.get(ch)
        if (b !== undefined) out.push(b)
        else out.push(...utf8Encode(`[UNK_BYTE_0x${[...utf8Encode(ch)].map((x) => x.toString(16).padStart(2, '0')).join('')}${text}]`))
      }
      return Uint8Array.from(out)
    }
    if ((attr & ATTR_BYTE) !== 0) return Uint8Array.of(parseInt(text.slice(3, 5), 16))
    return new Uint8Array(0)
  }

  applyChatTemplate (messages: ChatMessage[], options: { addGenerationPrompt?: boolean } = {}): string {
    return renderChatTemplate(this.specials.chatTemplate, messages, {
      addGenerationPrompt: options.addGenerationPrompt,
      bosToken: this.bosId !== undefined ? this.texts[this.bosId] : '',
      eosToken: this.eosId !== undefined ? this.texts[this.eosId] : ''
    })
  }

  /** id of an exact token text, if any */
  tokenId (text: string): number | undefined {
    return this.tokenToId.get(text)
  }

  private requireId (id: number | undefined, what: string): number {
    if (id === undefined) throw new InvalidVocabError(`the vocabulary asks to add ${what} but has no ${what} token`)
    return id
  }

  /** tokenizer_st_partition: split special-token text out of raw text (control/unknown only when parseSpecial) */
  private partition (text: string, parseSpecial: boolean): Fragment[] {
    let fragments: Fragment[] = text === '' ? [] : [{ text }]
    for (const id of this.specialCache) {
      if (!parseSpecial && (this.attrs[id] & (ATTR_CONTROL | ATTR_UNKNOWN)) !== 0) continue
      const needle = this.texts[id]
      const next: Fragment[] = []
      for (const f of fragments) {
        if (!('text' in f)) { next.push(f); continue }
        let from = 0
        for (let at = f.text.indexOf(needle); at !== -1; at = f.text.indexOf(needle, from)) {
          if (at > from) next.push({ text: f.text.slice(from, at) })
          next.push({ token: id })
          from = at + needle.length
        }
        if (from < f.text.length) next.push(from === 0 ? f : { text: f.text.slice(from) })
      }
      fragments = next
    }
    return fragments
  }

  /** llm_tokenizer_spm_session::tokenize over whitespace-escaped text */
  private spm (text: string, output: number[]): void {
    const symbols: Symbol[] = []
    for (let offs = 0; offs < text.length;) {
      const n = (text.codePointAt(offs) as number) > 0xffff ? 2 : 1
      symbols.push({ start: offs, n, prev: symbols.length - 1, next: offs + n === text.length ? -1 : symbols.length + 1 })
      offs += n
    }
    interface Bigram { left: number, right: number, score: number, size: number }
    const queue = new Heap<Bigram>((a, b) => a.score > b.score || (a.score === b.score && a.left < b.left))
    const symText = (s: Symbol, extra = 0): string => text.slice(s.start, s.start + s.n + extra)
    const tryAdd = (left: number, right: number): void => {
      if (left === -1 || right === -1) return
      const t = symText(symbols[left], symbols[right].n)
      const id = this.tokenToId.get(t)
      if (id === undefined) return
      queue.push({ left, right, score: this.scores[id], size: t.length })
    }
    for (let i = 1; i < symbols.length; i++) tryAdd(i - 1, i)
    while (queue.size > 0) {
      const bigram = queue.pop()
      const l = symbols[bigram.left]
      const r = symbols[bigram.right]
      if (l.n === 0 || r.n === 0 || l.n + r.n !== bigram.size) continue
      l.n += r.n
      r.n = 0
      l.next = r.next
      if (r.next >= 0) symbols[r.next].prev = bigram.left
      tryAdd(l.prev, bigram.left)
      tryAdd(bigram.left, l.next)
    }
    // every merged symbol is a vocab entry, so llama.cpp's rev_merge resegmentation never applies
    for (let i = symbols.length > 0 ? 0 : -1; i !== -1; i = symbols[i].next) {
      const t = symText(symbols[i])
      const id = this.tokenToId.get(t)
      if (id !== undefined) { output.push(id); continue }
      for (const b of utf8Encode(t)) output.push(this.byteToken(b))
    }
  }

  /** llama_vocab::byte_to_token for SPM: <0xNN>, else the raw one-byte text */
  private byteToken (b: number): number {
    const hex = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`
    const id = this.tokenToId.get(hex) ?? (b < 0x80 ? this.tokenToId.get(String.fromCharCode(b)) : undefined)
    if (id === undefined) throw new InvalidVocabError(`no byte token ${hex} for byte fallback`)
    return id
  }

  /** llm_tokenizer_bpe_session::tokenize */
  private bpe (text: string, output: number[]): void {
    const pre = this.pre as BpePreTokenizer
    const words = preTokenize(text, pre.regexes, codePoints(text)).map(byteEncode)
    interface Bigram { left: number, right: number, text: string, rank: number }
    for (const word of words) {
      const symbols: Symbol[] = []
      if (pre.ignoreMerges && this.tokenToId.has(word)) {
        symbols.push({ start: 0, n: word.length, prev: -1, next: -1 })
      } else {
        // byte-level text: every char is one UTF-16 unit
        for (let i = 0; i < word.length; i++) symbols.push({ start: i, n: 1, prev: i - 1, next: i + 1 === word.length ? -1 : i + 1 })
      }
      const queue = new Heap<Bigram>((a, b) => a.rank < b.rank || (a.rank === b.rank && a.left < b.left))
      const symText = (s: Symbol): string => word.slice(s.start, s.start + s.n)
      const addBigram = (left: number, right: number): void => {
        if (left === -1 || right === -1) return
        const lt = symText(symbols[left])
        const rt = symText(symbols[right])
        const rank = this.bpeRanks.get(lt)?.get(rt)
        if (rank === undefined) return
        queue.push({ left, right, text: lt + rt, rank })
      }
      for (let i = 1; i < symbols.length; i++) addBigram(i - 1, i)
      while (queue.size > 0) {
        const bigram = queue.pop()
        const l = symbols[bigram.left]
        const r = symbols[bigram.right]
        if (l.n === 0 || r.n === 0) continue
        if (symText(l) + symText(r) !== bigram.text) continue
        l.n += r.n
        r.n = 0
        l.next = r.next
        if (r.next >= 0) symbols[r.next].prev = bigram.left
        addBigram(l.prev, bigram.left)
        addBigram(bigram.left, l.next)
      }
      for (const s of symbols) {
        if (s.n === 0) continue
        const t = symText(s)
        const id = this.tokenToId.get(t)
        if (id !== undefined) { output.push(id); continue }
        // llama.cpp looks up each UTF-8 byte of the byte-level text as a one-byte token: only ASCII can match
        for (const b of utf8Encode(t)) {
          const byteId = b < 0x80 ? this.tokenToId.get(String.fromCharCode(b)) : undefined
          if (byteId !== undefined) output.push(byteId)
        }
      }
    }
  }
}

/** llama_detokenize's clean_spaces passes (BPE vocabularies whose pre-tokenizer keeps them on) */
function cleanSpacesPasses (input: number[]): number[] {
  const SP = 0x20
  const ch = (s: string): number => s.charCodeAt(0)
  let text = input.slice()
  // first pass: " ?", " !", " .", " ,"
  let out: number[] = text.length > 0 ? [text[0]] : []
  for (let i = 1; i < text.length; i++) {
    const x = text[i]
    if (text[i - 1] === SP && (x === ch('?') || x === ch('!') || x === ch('.') || x === ch(','))) out.pop()
    out.push(x)
  }
  // second pass: strip a single apostrophe's surrounding spaces " ' "
  text = out
  out = text.length > 0 ? [text[0]] : []
  for (let i = 1; i < text.length; i++) {
    const x = text[i]
    if (x === ch("'") && i + 1 < text.length && text[i - 1] === SP && text[i + 1] === SP) {
      out.pop()
      text[++i] = 0 // llama.cpp overwrites the next space with NUL and skips it
    }
    out.push(x)
  }
  // third pass: " 's", " 'm", " 're", " 've"
  text = out
  out = text.length > 0 ? [text[0]] : []
  for (let i = 1; i < text.length; i++) {
    const x = text[i]
    if (text[i - 1] === SP && x === ch("'") && i + 1 < text.length) {
      const x1 = text[i + 1]
      if (x1 === ch('s') || x1 === ch('m')) out.pop()
      else if (i + 2 < text.length) {
        const x2 = text[i + 2]
        if ((x1 === ch('r') && x2 === ch('e')) || (x1 === ch('v') && x2 === ch('e'))) out.pop()
      }
    }
    out.push(x)
  }
  return out
}


