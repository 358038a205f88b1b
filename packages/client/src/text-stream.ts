/**
 * Incremental detokenization. Decoding token by token breaks multi-byte characters (byte-fallback tokens) and loses
 * SentencePiece's leading space, so each step decodes all generated ids behind a few prompt ids of context and
 * emits only what is new and stable: a trailing U+FFFD (an unfinished UTF-8 sequence) waits for the next token, and
 * so does a tail that could be the start of a stop string.
 */
import type { Tokenizer } from '@swarm/kernels'

const REPLACEMENT = '\uFFFD'
/** prompt ids decoded in front of the generated ones, so the first generated token decodes as it does mid-text */
const CONTEXT_TOKENS = 4

export class TextStream {
  private readonly tokenizer: Tokenizer
  private readonly context: number[]
  private readonly contextText: string
  private readonly stops: string[]
  private readonly ids: number[] = []
  /** the generated text so far (cut before a stop string once one appeared) */
  text = ''
  /** characters of `text` already handed out */
  private emitted = 0
  /** a stop string appeared; `text` ends before it */
  stopped = false

  constructor (tokenizer: Tokenizer, promptIds: number[], stops: string[]) {
    this.tokenizer = tokenizer
    this.context = promptIds.slice(-CONTEXT_TOKENS)
    this.contextText = tokenizer.decode(this.context)
    this.stops = stops
  }

  private decode (): string {
    const withContext = this.tokenizer.decode([...this.context, ...this.ids])
    if (withContext.startsWith(this.contextText)) return withContext.slice(this.contextText.length)
    return this.tokenizer.decode(this.ids)
  }

  /** adds one generated id; returns the text that became stable (possibly empty) */
  push (id: number): string {
    if (this.stopped) throw new Error('the text stream already ended at a stop string')
    this.ids.push(id)
    const full = this.decode()
    // the earliest stop string in the new text (already emitted text cannot contain one: its tail was held back)
    const longestStop = this.stops.reduce((n, s) => Math.max(n, s.length), 0)
    const searchFrom = Math.max(0, this.emitted - longestStop + 1)
    let stopAt = -1
    for (const s of this.stops) {
      const at = full.indexOf(s, searchFrom)
      if (at !== -1 && (stopAt === -1 || at < stopAt)) stopAt = at
    }
    if (stopAt !== -1) {
      this.stopped = true
      this.text = full.slice(0, Math.max(stopAt, this.emitted))
      return this.take(this.text.length)
    }
    this.text = full
    let stable = full.length
    while (stable > this.emitted && full[stable - 1] === REPLACEMENT) stable--
    return this.take(stable - this.heldForStop(full, stable))
  }

  /** ends the stream: returns whatever was held back */
  finish (): string {
    return this.take(this.text.length)
  }

  /** length of the longest tail of full[0, end) that is a proper prefix of a stop string */
  private heldForStop (full: string, end: number): number {
    let held = 0
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, end - this.emitted); n > held; n--) {
        if (full.startsWith(s.slice(0, n), end - n)) {
          held = n
          break
        }
      }
    }
    return held
  }

  private take (end: number): string {
    if (end <= this.emitted) return ''
    const piece = this.text.slice(this.emitted, end)
    this.emitted = end
    return piece
  }
}
