/**
 * Code point classes as llama.cpp's unicode.cpp sees them (its `unicode_cpt_flags`), and GPT-2's byte <-> unicode
 * mapping. Categories come from the JS engine's Unicode tables (`\p{..}`); llama.cpp's generated table may be an
 * older Unicode version, so code points assigned only in a newer version classify differently (llama.cpp calls them
 * undefined). The whitespace set is llama.cpp's explicit list (it differs from JS `\s`: U+0085 is in, U+FEFF out).
 */

export const FLAG_UNDEFINED = 0x0001
export const FLAG_NUMBER = 0x0002
export const FLAG_LETTER = 0x0004
export const FLAG_SEPARATOR = 0x0008
export const FLAG_ACCENT_MARK = 0x0010
export const FLAG_PUNCTUATION = 0x0020
export const FLAG_SYMBOL = 0x0040
export const FLAG_CONTROL = 0x0080
export const MASK_CATEGORIES = 0x00ff
export const FLAG_WHITESPACE = 0x0100

const WHITESPACE = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006,
  0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000
])

const CATEGORY_TESTS: Array<[number, RegExp]> = [
  [FLAG_NUMBER, /^\p{N}$/u],
  [FLAG_LETTER, /^\p{L}$/u],
  [FLAG_SEPARATOR, /^\p{Z}$/u],
  [FLAG_ACCENT_MARK, /^\p{M}$/u],
  [FLAG_PUNCTUATION, /^\p{P}$/u],
  [FLAG_SYMBOL, /^\p{S}$/u],
  [FLAG_CONTROL, /^\p{C}$/u]
]
const UNASSIGNED = /^\p{Cn}$/u

/** lazily filled: 0 = not computed yet, else flags | 0x8000 */
const flagCache = new Uint16Array(0x110000)

/** llama.cpp's flags of one code point; 0 for positions outside the text (callers pass -1) */
export function cptFlags (cpt: number): number {
  if (cpt < 0 || cpt > 0x10ffff) return 0
  const cached = flagCache[cpt]
  if (cached !== 0) return cached & 0x7fff
  let flags = FLAG_UNDEFINED
  if (cpt >= 0xd800 && cpt <= 0xdfff) {
    flags = FLAG_CONTROL // surrogates: category Cs
  } else {
    const s = String.fromCodePoint(cpt)
    if (!UNASSIGNED.test(s)) {
      for (const [flag, re] of CATEGORY_TESTS) {
        if (re.test(s)) { flags = flag; break }
      }
    }
  }
  if (WHITESPACE.has(cpt)) flags |= FLAG_WHITESPACE
  flagCache[cpt] = flags | 0x8000
  return flags
}

export const isLetter = (cpt: number): boolean => (cptFlags(cpt) & FLAG_LETTER) !== 0
export const isNumber = (cpt: number): boolean => (cptFlags(cpt) & FLAG_NUMBER) !== 0
export const isWhitespace = (cpt: number): boolean => (cptFlags(cpt) & FLAG_WHITESPACE) !== 0

/** code points of `text` (lone surrogates become U+FFFD, as UTF-8 encoding then llama.cpp's decoder would do) */
export function codePoints (text: string): number[] {
  const out: number[] = []
  for (const ch of text) {
    const cpt = ch.codePointAt(0) as number
    out.push(cpt >= 0xd800 && cpt <= 0xdfff ? 0xfffd : cpt)
  }
  return out
}

/** GPT-2's reversible byte -> printable unicode char mapping (bytes_to_unicode) */
export const BYTE_TO_UNICODE: string[] = (() => {
  const map: string[] = new Array(256)
  let n = 0
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)
    map[b] = printable ? String.fromCharCode(b) : String.fromCharCode(256 + n++)
  }
  return map
})()

export const UNICODE_TO_BYTE: Map<string, number> = new Map(BYTE_TO_UNICODE.map((ch, b) => [ch, b]))

const utf8Encoder = new TextEncoder()
const utf8Decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true })

/** UTF-8 bytes of `text` (lone surrogates become U+FFFD) */
export const utf8Encode = (text: string): Uint8Array => utf8Encoder.encode(text)

/** `text` with lone surrogates replaced by U+FFFD, as UTF-8 encoding would */
export function wellFormed (text: string): string {
  return /[\ud800-\udfff]/.test(text) ? codePoints(text).map((c) => String.fromCodePoint(c)).join('') : text
}
/** bytes -> text; invalid sequences become U+FFFD */
export const utf8Decode = (bytes: Uint8Array): string => utf8Decoder.decode(bytes)

/** text -> GPT-2 byte-level string (each UTF-8 byte mapped to its printable char) */
export function byteEncode (text: string): string {
  let out = ''
  for (const b of utf8Encode(text)) out += BYTE_TO_UNICODE[b]
  return out
}
