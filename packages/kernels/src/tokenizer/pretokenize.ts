/**
 * BPE pre-tokenization as llama.cpp does it (unicode.cpp `unicode_regex_split`): each `tokenizer.ggml.pre` names a
 * list of regexes applied one after another, each splitting the pieces the previous one left. The GPT-2, Llama 3
 * and Qwen2 regexes run as hand-written matchers (ports of llama.cpp's custom implementations, which is what
 * llama.cpp itself runs for them); any other regex runs like llama.cpp's std::regex fallback: over a "collapsed"
 * text where every non-ASCII code point is replaced by one byte standing for its category, so `\p{L}` etc. become
 * plain character classes.
 */
import { UnsupportedTokenizerError } from './errors.js'
import {
  cptFlags, FLAG_ACCENT_MARK, FLAG_LETTER, FLAG_NUMBER, FLAG_PUNCTUATION, FLAG_SYMBOL, FLAG_WHITESPACE,
  isWhitespace, MASK_CATEGORIES
} from './unicode.js'

const GPT2_REGEX = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
const LLAMA3_REGEX = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
const QWEN2_REGEX = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/** How a `tokenizer.ggml.pre` value configures llama.cpp's BPE tokenizer. */
export interface BpePreTokenizer {
  /** regexes applied in order */
  regexes: string[]
  /** a whole pre-token that is itself a vocab entry is not merged further (Llama 3) */
  ignoreMerges: boolean
  /** add_bos default before `tokenizer.ggml.add_bos_token` overrides it */
  addBosDefault: boolean
  /** detokenize removes spaces before punctuation and some contractions */
  cleanSpaces: boolean
}

const preset = (regexes: string[], options: Partial<BpePreTokenizer> = {}): BpePreTokenizer =>
  ({ regexes, ignoreMerges: false, addBosDefault: false, cleanSpaces: true, ...options })

const DEFAULT_PRE = preset([
  '[\\p{P}\\$\\+<=>\\^~\\|]+',
  GPT2_REGEX,
  '\\p{N}+',
  '[0-9][0-9][0-9]'
])

/** the pre-tokenizer names of llama.cpp (llama-vocab.cpp) this port supports, grouped as llama.cpp groups them */
const PRESETS: Array<[string[], BpePreTokenizer]> = [
  [['default'], DEFAULT_PRE],
  [['llama3', 'llama-v3', 'llama-bpe', 'falcon3', 'falcon-h1', 'pixtral', 'midm-2.0', 'lfm2', 'jina-v5-nano'],
    preset([LLAMA3_REGEX], { ignoreMerges: true, addBosDefault: true })],
  [['dbrx', 'smaug-bpe'], preset([LLAMA3_REGEX])],
  [['qwen2', 'deepseek-r1-qwen', 'kormo', 'f2llmv2'], preset([QWEN2_REGEX], { cleanSpaces: false })],
  [['stablelm2'], preset([QWEN2_REGEX])],
  [['gpt-2', 'phi-2', 'jina-es', 'jina-de', 'gigachat', 'jina-v2-es', 'jina-v2-de', 'a.x-4.0', 'mellum', 'modern-bert',
    'jina-v1-en', 'jina-v2-code', 'roberta-bpe', 'mpt', 'olmo', 'jais', 'exaone4'], preset([GPT2_REGEX])],
  [['starcoder', 'refact', 'codeshell', 'exaone', 'minerva-7b', 'mellum2'], preset(['\\p{N}', GPT2_REGEX])],
  [['smollm', 'command-r'], preset(['\\p{N}', GPT2_REGEX], { cleanSpaces: false })]
]

/**
 * The pre-tokenizer llama.cpp uses for `pre`. A missing `pre` means 'default' (llama.cpp warns that quality
 * degrades); a name this port does not know throws, as llama.cpp does ("unknown pre-tokenizer type").
 */
export function bpePreTokenizer (pre: string | undefined): BpePreTokenizer {
  if (pre === undefined || pre === '') return DEFAULT_PRE
  for (const [names, p] of PRESETS) if (names.includes(pre)) return p
  throw new UnsupportedTokenizerError(`unknown pre-tokenizer type: '${pre}'`)
}

/** names accepted by `bpePreTokenizer` */
export const SUPPORTED_PRE_TOKENIZERS: readonly string[] = PRESETS.flatMap(([names]) => names)

type Splitter = (cpts: number[], offsets: number[]) => number[]

/** Shared frame of llama.cpp's custom splitters: walks each piece, `step` returns the end of the next token. */
function customSplit (cpts: number[], offsets: number[], step: (pos: number, end: number, cpt: (p: number) => number, flags: (p: number) => number) => number): number[] {
  const out: number[] = []
  let start = 0
  for (const offset of offsets) {
    const ini = start
    const end = start + offset
    start = end
    const cpt = (p: number): number => (p >= ini && p < end ? cpts[p] : -1)
    const flags = (p: number): number => (p >= ini && p < end ? cptFlags(cpts[p]) : 0)
    let prevEnd = ini
    let pos = ini
    while (pos < end) {
      const tokenEnd = step(pos, end, cpt, flags)
      if (tokenEnd > prevEnd) out.push(tokenEnd - prevEnd)
      prevEnd = tokenEnd
      pos = tokenEnd
    }
  }
  return out
}

const lower = (c: number): number => (c >= 0x41 && c <= 0x5a ? c + 32 : c)
const CH = (s: string): number => s.charCodeAt(0)
const [APOS, SPACE, CR, LF] = [CH("'"), CH(' '), CH('\r'), CH('\n')]

/** `'s|'t|'re|'ve|'m|'ll|'d`, case-insensitive or not; returns the end or -1 */
function contraction (pos: number, end: number, cpt: (p: number) => number, caseless: boolean): number {
  if (cpt(pos) !== APOS || pos + 1 >= end) return -1
  const f = caseless ? lower : (c: number): number => c
  const next = f(cpt(pos + 1))
  if (next === CH('s') || next === CH('t') || next === CH('m') || next === CH('d')) return pos + 2
  if (pos + 2 < end) {
    const nn = f(cpt(pos + 2))
    if ((next === CH('r') && nn === CH('e')) || (next === CH('v') && nn === CH('e')) || (next === CH('l') && nn === CH('l'))) return pos + 3
  }
  return -1
}

const isWs = (f: number): boolean => (f & FLAG_WHITESPACE) !== 0
const isL = (f: number): boolean => (f & FLAG_LETTER) !== 0
const isN = (f: number): boolean => (f & FLAG_NUMBER) !== 0

/** GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ (unicode_regex_split_custom_gpt2) */
const splitGpt2: Splitter = (cpts, offsets) => customSplit(cpts, offsets, (pos, end, cpt, flags) => {
  const c = contraction(pos, end, cpt, false)
  if (c >= 0) return c
  const f = flags(pos)
  let f2 = c0(cpt(pos)) ? flags(pos + 1) : f
  if (isL(f2)) {
    pos += c0(cpt(pos)) ? 1 : 0
    while (isL(f2)) f2 = flags(++pos)
    return pos
  }
  if (isN(f2)) {
    pos += c0(cpt(pos)) ? 1 : 0
    while (isN(f2)) f2 = flags(++pos)
    return pos
  }
  if (!(isWs(f2) || isL(f2) || isN(f2)) && f2 !== 0) {
    pos += c0(cpt(pos)) ? 1 : 0
    while (!(isWs(f2) || isL(f2) || isN(f2)) && f2 !== 0) f2 = flags(++pos)
    return pos
  }
  let nWs = 0
  while (isWs(flags(pos + nWs))) nWs++
  if (nWs > 1 && cpt(pos + nWs) !== -1) return pos + nWs - 1
  if (nWs > 0) return pos + nWs
  return pos + 1
})
function c0 (c: number): boolean { return c === SPACE }

/** Llama 3 (digits in runs of up to 3) and Qwen2 (single digits): unicode_regex_split_custom_llama3 / _qwen2 */
function llama3Like (maxDigits: number): Splitter {
  return (cpts, offsets) => customSplit(cpts, offsets, (pos, end, cpt, flags) => {
    const c = contraction(pos, end, cpt, true)
    if (c >= 0) return c
    const ch = cpt(pos)
    const f = flags(pos)
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (!(ch === CR || ch === LF || isN(f))) {
      if (isL(f) || isL(flags(pos + 1))) {
        pos++
        while (isL(flags(pos))) pos++
        return pos
      }
    }
    // \p{N}{1,maxDigits}
    if (isN(f)) {
      let n = 0
      while (isN(flags(pos)) && n < maxDigits) { pos++; n++ }
      return pos
    }
    // <space>?[^\s\p{L}\p{N}]+[\r\n]*
    let f2 = ch === SPACE ? flags(pos + 1) : f
    if (!(isWs(f2) || isL(f2) || isN(f2)) && f !== 0) {
      pos += ch === SPACE ? 1 : 0
      while (!(isWs(f2) || isL(f2) || isN(f2)) && f2 !== 0) f2 = flags(++pos)
      let c2 = cpt(pos)
      while (c2 === CR || c2 === LF) c2 = cpt(++pos)
      return pos
    }
    let nWs = 0
    let lastEndRorN = 0
    while (isWs(flags(pos + nWs))) {
      const c2 = cpt(pos + nWs)
      if (c2 === CR || c2 === LF) lastEndRorN = pos + nWs + 1
      nWs++
    }
    if (lastEndRorN > 0) return lastEndRorN // \s*[\r\n]+
    if (nWs > 1 && cpt(pos + nWs) !== -1) return pos + nWs - 1 // \s+(?!\S)
    if (nWs > 0) return pos + nWs // \s+
    return pos + 1
  })
}

// llama.cpp's std::regex fallback over collapsed text ------------------------------------------------------------

const COLLAPSED: Record<number, number> = {
  [FLAG_NUMBER]: 0xd1, [FLAG_LETTER]: 0xd2, [FLAG_PUNCTUATION]: 0xd3, [FLAG_ACCENT_MARK]: 0xd4, [FLAG_SYMBOL]: 0xd5
}
const UCAT: Record<string, number> = {
  '\\p{N}': FLAG_NUMBER, '\\p{L}': FLAG_LETTER, '\\p{P}': FLAG_PUNCTUATION, '\\p{M}': FLAG_ACCENT_MARK, '\\p{S}': FLAG_SYMBOL,
  '\\p{Lu}': FLAG_LETTER, '\\p{Ll}': FLAG_LETTER, '\\p{Lt}': FLAG_LETTER, '\\p{Lm}': FLAG_LETTER, '\\p{Lo}': FLAG_LETTER
}
/** the ASCII members of each category, as llama.cpp spells them inside a character class */
const UCAT_ASCII: Record<number, string> = {
  [FLAG_NUMBER]: '\x30-\x39',
  [FLAG_LETTER]: '\x41-\x5A\x61-\x7A',
  [FLAG_PUNCTUATION]: '\x21-\x23\x25-\x2A\x2C-\x2F\x3A-\x3B\x3F-\x40\\\x5B-\\\x5D\x5F\\\x7B\\\x7D',
  [FLAG_ACCENT_MARK]: '',
  [FLAG_SYMBOL]: '\\\x24\\\x2B\x3C-\x3E\x5E\x60\\\x7C\\\x7E'
}

function collapseText (cpts: number[]): string {
  let s = ''
  for (const c of cpts) {
    if (c < 128) { s += String.fromCharCode(c); continue }
    const f = cptFlags(c)
    if (isWs(f)) s += '\x0B'
    else s += String.fromCharCode(COLLAPSED[f & MASK_CATEGORIES] ?? 0xd0)
  }
  return s
}

function collapseRegex (regex: string): string {
  let out = ''
  let inside = false
  for (let i = 0; i < regex.length; i++) {
    if (regex[i] === '[' && (i === 0 || regex[i - 1] !== '\\')) { out += '['; inside = true; continue }
    if (inside && regex[i] === ']' && regex[i - 1] !== '\\') { out += ']'; inside = false; continue }
    if (regex[i] === '\\' && i + 3 < regex.length && regex[i + 1] === 'p' && regex[i + 2] === '{') {
      const close = regex.indexOf('}', i + 3)
      if (close !== -1 && close <= i + 10) {
        const cat = UCAT[regex.slice(i, close + 1)]
        if (cat !== undefined) {
          out += (inside ? '' : '[') + String.fromCharCode(COLLAPSED[cat]) + UCAT_ASCII[cat] + (inside ? '' : ']')
          i = close
          continue
        }
      }
    }
    out += regex[i]
  }
  return out
}

/** std::regex_iterator over each piece: matches and the gaps between them both become pieces */
function regexSplit (text: string, re: RegExp, offsets: number[]): number[] {
  const out: number[] = []
  let start = 0
  for (const offset of offsets) {
    const piece = text.slice(start, start + offset)
    re.lastIndex = 0
    let startIdx = 0
    for (let m = re.exec(piece); m !== null; m = re.exec(piece)) {
      if (m[0].length === 0) { re.lastIndex++; continue }
      if (m.index > startIdx) out.push(m.index - startIdx)
      out.push(m[0].length)
      startIdx = m.index + m[0].length
    }
    if (startIdx < offset) out.push(offset - startIdx)
    start += offset
  }
  return out
}

const CUSTOM: Record<string, Splitter> = {
  [GPT2_REGEX]: splitGpt2,
  [LLAMA3_REGEX]: llama3Like(3),
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+": llama3Like(3),
  [QWEN2_REGEX]: llama3Like(1)
}

const compiled = new Map<string, RegExp>()

/**
 * Split `text` into pre-tokens with llama.cpp's regex list semantics. Returns the pieces as strings (not yet
 * byte-encoded). Offsets are counted in code points, as llama.cpp counts them.
 */
export function preTokenize (text: string, regexes: readonly string[], cpts: number[]): string[] {
  let offsets = [cpts.length]
  let collapsed: string | undefined
  let wide: string | undefined
  for (const regex of regexes) {
    const custom = CUSTOM[regex]
    if (custom !== undefined) {
      offsets = custom(cpts, offsets)
      continue
    }
    let re = compiled.get(regex)
    const usesCategories = Object.keys(UCAT).some((cat) => regex.includes(cat))
    if (re === undefined) {
      // the collapsed text has only chars < 256, one per code point: no `u` flag, like std::regex over bytes
      re = new RegExp(usesCategories ? collapseRegex(regex) : regex, 'g')
      compiled.set(regex, re)
    }
    if (usesCategories) {
      collapsed ??= collapseText(cpts)
      offsets = regexSplit(collapsed, re, offsets)
    } else {
      // std::wregex over code points, non-ASCII whitespace as \v; astral code points become one placeholder unit
      wide ??= cpts.map((c) => c > 0x7f && isWhitespace(c) ? '\x0B' : c > 0xffff ? '\uFFFF' : String.fromCharCode(c)).join('')
      offsets = regexSplit(wide, re, offsets)
    }
  }
  const words: string[] = []
  let start = 0
  for (const offset of offsets) {
    let w = ''
    for (let i = start; i < start + offset; i++) w += String.fromCodePoint(cpts[i])
    words.push(w)
    start += offset
  }
  return words
}
