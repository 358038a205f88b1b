// Shared by test/model-oracle*.test.ts: tiny random model configs (K-quant friendly: dim and ffn multiples of 256,
// GQA), our LocalModel on the CPU reference, and logit comparison helpers.
import { argmax, defaultRegistry, LocalModel, openModel, PRESETS, randomWeights, syntheticVocab } from '@swarm/kernels'
import type { ModelConfig } from '@swarm/kernels'

const vocabSize = syntheticVocab().tokens.length

/** dim 256, 4 heads / 2 kv heads (head dim 64), ffn 512, 2 layers, the synthetic vocabulary */
export const LLAMA_GQA: ModelConfig = {
  ...PRESETS.tiny,
  name: 'oracle-llama-gqa',
  vocabSize,
  dim: 256,
  nHeads: 4,
  nKvHeads: 2,
  headDim: 64,
  ffnDim: 512,
  nLayers: 2,
  contextLength: 256
}

/** qwen2: q/k/v biases, tied embeddings, rotate_half RoPE (NEOX in llama.cpp), theta 1e6 */
export const QWEN2_TIED: ModelConfig = {
  ...LLAMA_GQA,
  name: 'oracle-qwen2-tied',
  architecture: 'qwen2',
  qkvBias: true,
  tiedEmbeddings: true,
  ropeTheta: 1_000_000
}

/**
 * Llama 3 RoPE scaling, with an original context so short (64) that most of the head's frequencies are rescaled
 * or smoothed at the positions the tests use; the GGUF carries it as rope_freqs.weight, the HF config as rope_scaling.
 */
export const LLAMA3_SCALED: ModelConfig = {
  ...LLAMA_GQA,
  name: 'oracle-llama3-scaled',
  ropeTheta: 500_000,
  ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContextLength: 64 }
}

/**
 * The fixture's seeded random weights, with one change for tied embeddings: the fixture draws token_embd with std 1,
 * which as the LM head gives logits of std ~16 instead of ~3; scaled like an untied output.weight (3/sqrt(dim)) the
 * logits have the same spread as the untied models (the first RMS norm makes the embedding scale irrelevant).
 */
export function testWeights (config: ModelConfig, seed: number): Map<string, Float32Array> {
  const weights = randomWeights(config, seed)
  if (config.tiedEmbeddings) {
    const embedding = weights.get('token_embd.weight')!
    const scale = 3 / Math.sqrt(config.dim)
    for (let i = 0; i < embedding.length; i++) embedding[i] *= scale
  }
  return weights
}

/** seeded token ids in [3, vocab): no BOS/EOS/UNK */
export function randomTokens (n: number, vocab: number, seed: number): number[] {
  let a = seed >>> 0
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0
    let t = Math.imul(a ^ (a >>> 15), a | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    out.push(3 + Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * (vocab - 3)))
  }
  return out
}

/** our logits [T][vocab] at every position, from position 0, on the CPU reference backend */
export async function ourLogits (path: string, tokens: number[]): Promise<Float32Array[]> {
  const source = await openModel(path)
  try {
    const model = await LocalModel.load(source, { ops: defaultRegistry.ops(['cpu-reference']) })
    const flat = model.createSession(tokens.length).forward(tokens, { allLogits: true })
    const V = model.config.vocabSize
    return tokens.map((_, t) => flat.slice(t * V, (t + 1) * V))
  } finally {
    await source.close()
  }
}

/** our greedy continuation: prefill, then one token at a time, argmax (lowest id on ties) */
export async function ourGreedy (path: string, prompt: number[], nTokens: number): Promise<number[]> {
  const source = await openModel(path)
  try {
    const model = await LocalModel.load(source, { ops: defaultRegistry.ops(['cpu-reference']) })
    const session = model.createSession(prompt.length + nTokens)
    const out: number[] = []
    let next = argmax(session.forward(prompt))
    out.push(next)
    while (out.length < nTokens) {
      next = argmax(session.forward([next]))
      out.push(next)
    }
    return out
  } finally {
    await source.close()
  }
}

export interface Comparison {
  /** max |a - b| over every position and vocabulary entry */
  maxAbsDiff: number
  /** max |a - b| of each position */
  perPosition: number[]
  /** median over positions of `perPosition` */
  medianPosition: number
  /** positions whose argmax differs */
  argmaxMismatches: number[]
  /** smallest top-1 minus top-2 logit gap of `b` over all positions (how close a tie was) */
  minTopGap: number
}

export function compareLogits (a: Float32Array[], b: Float32Array[]): Comparison {
  if (a.length !== b.length) throw new Error(`${a.length} positions vs ${b.length}`)
  let maxAbsDiff = 0
  let minTopGap = Infinity
  const argmaxMismatches: number[] = []
  const perPosition: number[] = []
  for (let t = 0; t < a.length; t++) {
    if (a[t].length !== b[t].length) throw new Error(`position ${t}: ${a[t].length} logits vs ${b[t].length}`)
    let m = 0
    for (let i = 0; i < a[t].length; i++) {
      const d = Math.abs(a[t][i] - b[t][i])
      if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d
    }
    perPosition.push(m)
    maxAbsDiff = Math.max(maxAbsDiff, m)
    if (argmax(a[t]) !== argmax(b[t])) argmaxMismatches.push(t)
    const sorted = Array.from(b[t]).sort((x, y) => y - x)
    minTopGap = Math.min(minTopGap, sorted[0] - sorted[1])
  }
  const sorted = [...perPosition].sort((x, y) => x - y)
  const medianPosition = sorted.length === 0 ? 0 : sorted[(sorted.length - 1) >> 1]
  return { maxAbsDiff, perPosition, medianPosition, argmaxMismatches, minTopGap }
}

export const fmt = (x: number): string => x.toExponential(2)
