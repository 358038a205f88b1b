import { describe, expect, it } from 'vitest'
import { argmax, createRandom, createSampler, InvalidSamplerOptionError, type SamplerOptions } from './sampler.js'

const logitsOf = (probs: number[]): Float32Array => Float32Array.from(probs, p => Math.log(p))

/** frequencies of each id over `n` draws */
function frequencies (options: SamplerOptions, logits: Float32Array, n: number, history: number[] = []): number[] {
  const sampler = createSampler(options)
  const counts = new Array<number>(logits.length).fill(0)
  for (let i = 0; i < n; i++) counts[sampler.sample(logits, history)]++
  return counts.map(c => c / n)
}

/** each observed frequency within 4.5 standard deviations of the expected probability */
function expectDistribution (observed: number[], expected: number[], n: number): void {
  expect(observed.length).toBe(expected.length)
  expected.forEach((p, i) => {
    const sigma = Math.sqrt(p * (1 - p) / n)
    if (p === 0) expect(observed[i], `id ${i}`).toBe(0)
    else expect(Math.abs(observed[i] - p), `id ${i}: observed ${observed[i]}, expected ${p}`).toBeLessThan(4.5 * sigma + 1e-9)
  })
}

const N = 20_000
const probs = [0.4, 0.3, 0.15, 0.1, 0.05]

describe('greedy (temperature 0)', () => {
  it('picks the largest logit, lowest id on ties, and is the default', () => {
    expect(createSampler({ temperature: 0 }).sample(Float32Array.from([1, 3, 2, 3]), [])).toBe(1)
    expect(createSampler().sample(Float32Array.from([5, 5, 5]), [])).toBe(0)
    expect(createSampler({ temperature: 0, topK: 1, topP: 0.1 }).sample(Float32Array.from([-2, -1, -1]), [])).toBe(1)
  })

  it('never picks NaN and handles -Infinity everywhere', () => {
    expect(argmax(Float32Array.from([NaN, -1, NaN]))).toBe(1)
    expect(argmax(Float32Array.from([-Infinity, -Infinity]))).toBe(0)
    expect(() => argmax(Float32Array.from([NaN, NaN]))).toThrow(/NaN/)
  })
})

describe('repetition penalty', () => {
  it('divides positive and multiplies negative logits of the distinct history ids', () => {
    // [2, -1, 1.5, 0.5] with penalty 2 over {0, 1} -> [1, -2, 1.5, 0.5]: id 2 wins
    const logits = Float32Array.from([2, -1, 1.5, 0.5])
    expect(createSampler({ repetitionPenalty: 2 }).sample(logits, [0, 1, 0, 0])).toBe(2)
    // penalizing twice would give 0.5 < 1.5 as well, so check the exact value through a tie: 3 / 2 = 1.5 ties id 2
    const tie = Float32Array.from([3, 0, 1.5])
    expect(createSampler({ repetitionPenalty: 2 }).sample(tie, [0, 0, 0])).toBe(0) // applied once: 1.5 == 1.5, lowest id
    // negative logits are pushed further down: -1 * 3 = -3 < -2
    expect(createSampler({ repetitionPenalty: 3 }).sample(Float32Array.from([-1, -2]), [0])).toBe(1)
    // penalty 1 is off
    expect(createSampler({ repetitionPenalty: 1 }).sample(Float32Array.from([2, 1]), [0])).toBe(0)
  })

  it('shifts the sampled distribution as computed by hand', () => {
    // logits log(0.5), log(0.5) -> both negative; id 0 in history with penalty 2 -> weight 0.5^2 vs 0.5
    const observed = frequencies({ temperature: 1, repetitionPenalty: 2, seed: 11 }, logitsOf([0.5, 0.5]), N, [0])
    expectDistribution(observed, [0.25 / 0.75, 0.5 / 0.75], N)
  })

  it('rejects history ids outside the vocabulary', () => {
    expect(() => createSampler({ repetitionPenalty: 1.1 }).sample(Float32Array.from([1, 2]), [2])).toThrow(RangeError)
  })
})

describe('sampling distributions', () => {
  it('temperature 1 follows the softmax', () => {
    expectDistribution(frequencies({ temperature: 1, seed: 1 }, logitsOf(probs), N), probs, N)
  })

  it('temperature sharpens and flattens', () => {
    const power = (t: number): number[] => {
      const w = probs.map(p => p ** (1 / t))
      const z = w.reduce((a, b) => a + b)
      return w.map(x => x / z)
    }
    expectDistribution(frequencies({ temperature: 0.5, seed: 2 }, logitsOf(probs), N), power(0.5), N)
    expectDistribution(frequencies({ temperature: 2, seed: 3 }, logitsOf(probs), N), power(2), N)
  })

  it('top-k keeps the k most likely and renormalizes', () => {
    const shuffled = [0.1, 0.4, 0.05, 0.3, 0.15]
    const observed = frequencies({ temperature: 1, topK: 2, seed: 4 }, logitsOf(shuffled), N)
    expectDistribution(observed, [0, 0.4 / 0.7, 0, 0.3 / 0.7, 0], N)
    // topK larger than the vocabulary keeps everything
    expectDistribution(frequencies({ temperature: 1, topK: 50, seed: 5 }, logitsOf(probs), N), probs, N)
  })

  it('top-p keeps the smallest prefix reaching p, including the token that crosses it', () => {
    // cumulative 0.4, 0.7, 0.85, ...: p = 0.6 keeps {0, 1}; p = 0.7 keeps {0, 1}; p = 0.71 keeps {0, 1, 2}
    expectDistribution(frequencies({ temperature: 1, topP: 0.6, seed: 6 }, logitsOf(probs), N), [0.4 / 0.7, 0.3 / 0.7, 0, 0, 0], N)
    const keep3 = [0.4, 0.3, 0.15].map(p => p / 0.85)
    expectDistribution(frequencies({ temperature: 1, topP: 0.71, seed: 7 }, logitsOf(probs), N), [...keep3, 0, 0], N)
    // a tiny p still keeps the single most likely token
    expectDistribution(frequencies({ temperature: 1, topP: 0.01, seed: 8 }, logitsOf(probs), 500), [1, 0, 0, 0, 0], 500)
  })

  it('top-p over a large vocabulary with a long tail matches the exact nucleus', () => {
    // head [0.3, 0.2, 0.2, 0.1] and 996 tail tokens sharing 0.2: p = 0.65 keeps ids {0, 1, 2} (0.3, 0.5, 0.7)
    const tail = new Array<number>(996).fill(0.2 / 996)
    const n = 5000
    const observed = frequencies({ temperature: 1, topP: 0.65, seed: 9 }, logitsOf([0.3, 0.2, 0.2, 0.1, ...tail]), n)
    expectDistribution(observed.slice(0, 4), [0.3 / 0.7, 0.2 / 0.7, 0.2 / 0.7, 0], n)
    expect(observed.slice(4).every(f => f === 0)).toBe(true)
    // a flat vocabulary: nothing can be cut before sorting, p = 0.5 keeps the lowest half of the ids
    const flat = frequencies({ temperature: 1, topP: 0.5, seed: 13 }, logitsOf(new Array<number>(1000).fill(0.001)), 200)
    expect(flat.slice(500).every(f => f === 0)).toBe(true)
  })

  it('top-k then top-p compose', () => {
    // top-k 3 -> [0.4, 0.3, 0.15] / 0.85; then p = 0.8 -> cumulative 0.47, 0.82: keep {0, 1}
    expectDistribution(frequencies({ temperature: 1, topK: 3, topP: 0.8, seed: 10 }, logitsOf(probs), N), [0.4 / 0.7, 0.3 / 0.7, 0, 0, 0], N)
  })

  it('never samples -Infinity or NaN logits', () => {
    const logits = Float32Array.from([-Infinity, 0, NaN, 0])
    const observed = frequencies({ temperature: 1, seed: 12 }, logits, 4000)
    expect(observed[0]).toBe(0)
    expect(observed[2]).toBe(0)
    expect(observed[1] + observed[3]).toBe(1)
  })
})

describe('determinism', () => {
  const logits = logitsOf(probs)
  const draw = (seed: number): number[] => {
    const sampler = createSampler({ temperature: 1.3, topK: 4, topP: 0.95, repetitionPenalty: 1.2, seed })
    const history: number[] = []
    for (let i = 0; i < 200; i++) history.push(sampler.sample(logits, history))
    return history
  }

  it('the same seed draws the same sequence, another seed another', () => {
    expect(draw(42)).toEqual(draw(42))
    expect(draw(42)).not.toEqual(draw(43))
  })

  it('the PRNG gives uniform doubles in [0, 1) and uses the high bits of large seeds', () => {
    const random = createRandom(7)
    let sum = 0
    for (let i = 0; i < N; i++) {
      const x = random()
      expect(x >= 0 && x < 1).toBe(true)
      sum += x
    }
    expect(Math.abs(sum / N - 0.5)).toBeLessThan(4.5 * Math.sqrt(1 / 12 / N))
    expect(createRandom(2 ** 32 + 5)()).not.toBe(createRandom(5)())
  })
})

describe('option validation', () => {
  it.each([
    [{ temperature: NaN }, /temperature/],
    [{ temperature: -0.5 }, /temperature/],
    [{ temperature: Infinity }, /temperature/],
    [{ topK: -1 }, /topK/],
    [{ topK: 1.5 }, /topK/],
    [{ topP: 0 }, /topP/],
    [{ topP: 1.5 }, /topP/],
    [{ topP: NaN }, /topP/],
    [{ repetitionPenalty: 0 }, /repetitionPenalty/],
    [{ repetitionPenalty: -1 }, /repetitionPenalty/],
    [{ repetitionPenalty: NaN }, /repetitionPenalty/],
    [{ seed: 1.5 }, /seed/],
    [{ seed: NaN }, /seed/]
  ] as Array<[SamplerOptions, RegExp]>)('rejects %o', (options, message) => {
    expect(() => createSampler(options)).toThrow(InvalidSamplerOptionError)
    expect(() => createSampler(options)).toThrow(message)
  })
})
