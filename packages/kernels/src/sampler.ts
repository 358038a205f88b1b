/**
 * Next-token sampling over a logits vector: repetition penalty, temperature, top-k, top-p (nucleus), then a draw
 * from a seeded PRNG. The order follows Hugging Face's logits processors (penalty -> temperature -> top-k -> top-p).
 * Temperature 0 is greedy argmax. Everything is deterministic for a given seed, so a swarm run and a local run
 * with the same seed draw the same tokens from the same logits.
 */

export interface SamplerOptions {
  /** softmax temperature; 0 (the default) means greedy argmax, lowest id on ties */
  temperature?: number
  /** keep only the k most likely tokens; 0 (the default) keeps all */
  topK?: number
  /** keep the smallest set of most likely tokens whose probability sum reaches p, at least one; 1 (the default) keeps all */
  topP?: number
  /** > 1 discourages tokens already in the history (HF / llama.cpp: positive logits divided, negative multiplied); 1 (default) is off */
  repetitionPenalty?: number
  /** PRNG seed (an integer); the default is a random seed */
  seed?: number
}

export interface Sampler {
  /** the next token id for `logits` [vocab] after the ids in `history` (prompt and generated tokens) */
  sample: (logits: Float32Array, history: number[]) => number
}

/** A sampler option outside its domain. */
export class InvalidSamplerOptionError extends RangeError {
  constructor (message: string) {
    super(message)
    this.name = 'InvalidSamplerOptionError'
  }
}

function check (ok: boolean, message: string): void {
  if (!ok) throw new InvalidSamplerOptionError(message)
}

/** Validates the options and applies the defaults. */
function resolveOptions (options: SamplerOptions): Required<SamplerOptions> {
  const temperature = options.temperature ?? 0
  const topK = options.topK ?? 0
  const topP = options.topP ?? 1
  const repetitionPenalty = options.repetitionPenalty ?? 1
  check(typeof temperature === 'number' && Number.isFinite(temperature) && temperature >= 0,
    `temperature must be a finite number >= 0 (0 = greedy), got ${String(options.temperature)}`)
  check(typeof topK === 'number' && Number.isSafeInteger(topK) && topK >= 0,
    `topK must be an integer >= 0 (0 = off), got ${String(options.topK)}`)
  check(typeof topP === 'number' && Number.isFinite(topP) && topP > 0 && topP <= 1,
    `topP must be a number in (0, 1], got ${String(options.topP)}`)
  check(typeof repetitionPenalty === 'number' && Number.isFinite(repetitionPenalty) && repetitionPenalty > 0,
    `repetitionPenalty must be a finite number > 0 (1 = off), got ${String(options.repetitionPenalty)}`)
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 32)
  check(typeof seed === 'number' && Number.isSafeInteger(seed),
    `seed must be an integer, got ${String(options.seed)}`)
  return { temperature, topK, topP, repetitionPenalty, seed }
}

/**
 * xoshiro128** seeded through splitmix32 over both 32-bit halves of the seed: small, fast, good statistical quality,
 * and identical on every JS engine (only 32-bit integer math).
 */
export function createRandom (seed: number): () => number {
  let sm = (seed >>> 0) ^ Math.imul(Math.floor(seed / 2 ** 32) >>> 0, 0x9e3779b9)
  const splitmix = (): number => {
    sm = (sm + 0x9e3779b9) | 0
    let z = sm
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
    return (z ^ (z >>> 16)) >>> 0
  }
  let a = splitmix()
  let b = splitmix()
  let c = splitmix()
  let d = splitmix()
  if ((a | b | c | d) === 0) a = 1
  const next32 = (): number => {
    const result = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0
    const t = b << 9
    c ^= a
    d ^= b
    b ^= c
    a ^= d
    c ^= t
    d = rotl(d, 11)
    return result
  }
  // 53 random bits -> a double uniform in [0, 1)
  return () => ((next32() >>> 5) * 67108864 + (next32() >>> 6)) / 9007199254740992
}

function rotl (x: number, k: number): number {
  return (x << k) | (x >>> (32 - k))
}

/** index of the largest value, lowest index on ties; NaN never wins */
export function argmax (values: ArrayLike<number>): number {
  let best = -1
  let bestValue = -Infinity
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    if (v > bestValue || (best === -1 && v === -Infinity)) {
      best = i
      bestValue = v
    }
  }
  if (best === -1) throw new RangeError('cannot pick a token: every logit is NaN (or the vocabulary is empty)')
  return best
}

/** Copies `logits` and applies the repetition penalty over the distinct ids of `history`. */
function penalized (logits: Float32Array, history: number[], penalty: number): Float64Array {
  const out = Float64Array.from(logits)
  if (penalty === 1) return out
  const seen = new Set<number>()
  for (const id of history) {
    if (seen.has(id)) continue
    if (!Number.isInteger(id) || id < 0 || id >= out.length) {
      throw new RangeError(`history token id ${id} is out of range [0, ${out.length})`)
    }
    seen.add(id)
    out[id] = out[id] > 0 ? out[id] / penalty : out[id] * penalty
  }
  return out
}

export function createSampler (options: SamplerOptions = {}): Sampler {
  const { temperature, topK, topP, repetitionPenalty, seed } = resolveOptions(options)
  const random = createRandom(seed)

  const sample = (logits: Float32Array, history: number[]): number => {
    const scores = penalized(logits, history, repetitionPenalty)
    if (temperature === 0) return argmax(scores)

    // candidate ids with finite logits
    let candidates: number[] = []
    let max = -Infinity
    for (let i = 0; i < scores.length; i++) {
      const v = scores[i]
      if (Number.isNaN(v) || v === -Infinity) continue
      candidates.push(i)
      if (v > max) max = v
    }
    if (candidates.length === 0) return argmax(scores)
    if (max === Infinity) return argmax(scores)
    if (topK > 0 && topK < candidates.length) candidates = topKIds(candidates, scores, topK)

    // unnormalized softmax weights at this temperature (max subtracted for stability)
    const weightOf = (id: number): number => Math.exp((scores[id] - max) / temperature)
    let total = 0
    for (const id of candidates) total += weightOf(id)

    if (topP < 1 && candidates.length > 1) {
      // Tokens below (1 - p) / (n - 1) of the mass together hold less than 1 - p, so the nucleus never reaches
      // them (llama2.c's trick): drop them before sorting, unless that would drop everything.
      const cutoff = total * (1 - topP) / (candidates.length - 1)
      const likely = candidates.filter(id => weightOf(id) >= cutoff)
      if (likely.length > 0) candidates = likely
    }
    // most likely first, lowest id first among equals, so the order (and the draw) is deterministic
    candidates.sort((x, y) => scores[y] - scores[x] || x - y)
    const weights = candidates.map(weightOf)

    // nucleus: the shortest prefix whose probability reaches topP (the token that crosses it is kept)
    let kept = candidates.length
    if (topP < 1) {
      let cumulative = 0
      for (let j = 0; j < candidates.length; j++) {
        cumulative += weights[j] / total
        if (cumulative >= topP) {
          kept = j + 1
          break
        }
      }
    }
    total = 0
    for (let j = 0; j < kept; j++) total += weights[j]

    let r = random() * total
    for (let j = 0; j < kept; j++) {
      r -= weights[j]
      if (r < 0) return candidates[j]
    }
    return candidates[kept - 1] // rounding left r a hair above 0
  }

  return { sample }
}

/** the k best ids of `ids` by score (ties: lower id), unordered; a linear-time select instead of a full sort */
function topKIds (ids: number[], scores: Float64Array, k: number): number[] {
  const better = (x: number, y: number): boolean => scores[x] > scores[y] || (scores[x] === scores[y] && x < y)
  const a = ids.slice()
  let lo = 0
  let hi = a.length - 1
  // quickselect: afterwards a[0..k) hold the k best
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1]
    let i = lo
    let j = hi
    while (i <= j) {
      while (better(a[i], pivot)) i++
      while (better(pivot, a[j])) j--
      if (i <= j) {
        const t = a[i]; a[i] = a[j]; a[j] = t
        i++
        j--
      }
    }
    if (k - 1 <= j) hi = j
    else if (k - 1 >= i) lo = i
    else break
  }
  return a.slice(0, k)
}
