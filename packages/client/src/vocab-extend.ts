/**
 * Grows a fixture vocabulary to a preset's vocabulary size (TinyLlama's 32000) with extra normal tokens, so a
 * random-weights model can have a real model's embedding and LM-head shapes. Deterministic: the same input and
 * size give the same tokens.
 */
import type { GgufVocab } from '@swarm/kernels'

/** type of an ordinary token in llama.cpp's token-type table */
const NORMAL_TOKEN = 1

/**
 * `vocab` with tokens '▁tok<id>' appended up to `size` tokens, each scoring below every existing token (so
 * SentencePiece merges prefer the original pieces) and below the one before it. A vocabulary that is already at
 * least `size` long comes back unchanged.
 */
export function extendVocab (vocab: GgufVocab, size: number): GgufVocab {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`vocabulary size must be an integer >= 0, got ${size}`)
  const extra = size - vocab.tokens.length
  if (extra <= 0) return vocab
  const existing = new Set(vocab.tokens)
  const tokens = vocab.tokens.slice()
  const tokenTypes = vocab.tokenTypes.slice()
  const scores = vocab.scores?.slice()
  let lowest = scores === undefined || scores.length === 0 ? 0 : Math.min(...scores)
  for (let id = vocab.tokens.length; id < size; id++) {
    let piece = `▁tok${id}`
    while (existing.has(piece)) piece += '_'
    existing.add(piece)
    tokens.push(piece)
    tokenTypes.push(NORMAL_TOKEN)
    if (scores !== undefined) scores.push(--lowest)
  }
  return { ...vocab, tokens, tokenTypes, ...(scores !== undefined ? { scores } : {}) }
}
