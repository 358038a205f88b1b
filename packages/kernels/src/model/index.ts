/**
 * Model runtime: a node runs a `BlockStack` (blocks [start, end) with a KV cache per session) on hidden states it
 * receives; a client runs the `ModelHead` (embeddings, final norm, LM head); `LocalModel` is both in one process.
 */
import { dequantizeRow, rowBytes } from '../quant/index.js'
import { defaultRegistry } from '../backend.js'
import type { Ops } from '../backend-types.js'
import type { ModelConfig, ModelSource } from '../types.js'
import { KvCache } from './kv-cache.js'
import { forwardBlocks, type BlockWeights } from './llama.js'
import { ropeInverseFrequencies } from './rope-frequencies.js'
import {
  loadBlockWeights, loadHeadWeights, loadRopeFreqFactors, prepareBlockWeights, prepareHeadWeights, type HeadWeights
} from './weights.js'

export { KvCache, kvBytesPerToken } from './kv-cache.js'
export { forwardBlock, forwardBlocks, createRunState, type BlockWeights, type RunState } from './llama.js'
export { ropeInverseFrequencies } from './rope-frequencies.js'
export { loadBlockWeights, loadHeadWeights, type HeadWeights } from './weights.js'

export interface LoadOptions {
  signal?: AbortSignal
  /** an explicit op set (default: the default registry's best backend per op) */
  ops?: Ops
  /** worker threads for backends that use them (the CPU reference runs on the calling thread) */
  threads?: number
}

/** Blocks [start, end) of a model, loaded alone. */
export class BlockStack {
  readonly config: ModelConfig
  readonly start: number
  readonly end: number
  private readonly blocks: BlockWeights[]
  private readonly invFreqs: Float64Array
  private readonly ops: Ops

  private constructor (config: ModelConfig, start: number, end: number, blocks: BlockWeights[], invFreqs: Float64Array, ops: Ops) {
    this.config = config
    this.start = start
    this.end = end
    this.blocks = blocks
    this.invFreqs = invFreqs
    this.ops = ops
  }

  static async load (source: ModelSource, range: { start: number, end: number }, options: LoadOptions = {}): Promise<BlockStack> {
    const { start, end } = range
    const n = source.config.nLayers
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > n || start >= end) {
      throw new Error(`invalid block range [${start}, ${end}) for a model of ${n} blocks`)
    }
    const ops = options.ops ?? defaultRegistry.ops()
    const blocks: BlockWeights[] = []
    for (let b = start; b < end; b++) blocks.push(prepareBlockWeights(ops, await loadBlockWeights(source, b, options)))
    const invFreqs = ropeInverseFrequencies(source.config, await loadRopeFreqFactors(source, options))
    return new BlockStack(source.config, start, end, blocks, invFreqs, ops)
  }

  /**
   * A fresh KV cache for one session of at most `maxLength` positions, over blocks [range.start, range.end) of
   * this stack (default: all of them). A swarm route may enter a node's range in the middle.
   */
  createCache (maxLength: number, range: { start: number, end: number } = this): KvCache {
    this.checkRange(range)
    return new KvCache(range.end - range.start, maxLength, this.config.nKvHeads * this.config.headDim)
  }

  /**
   * Runs hidden states [T, dim] through blocks [range.start, range.end) (default: all) at the cache's next
   * positions; returns new hidden states. The cache must have been created for the same range.
   */
  forward (cache: KvCache, hidden: Float32Array, T: number, range: { start: number, end: number } = this): Float32Array {
    this.checkRange(range)
    if (cache.keys.length !== range.end - range.start) {
      throw new Error(`the cache holds ${cache.keys.length} blocks, the range [${range.start}, ${range.end}) has ${range.end - range.start}`)
    }
    const x = Float32Array.from(hidden)
    const blocks = this.blocks.slice(range.start - this.start, range.end - this.start)
    forwardBlocks(this.ops, this.config, blocks, cache, x, T, this.invFreqs)
    return x
  }

  private checkRange (range: { start: number, end: number }): void {
    const { start, end } = range
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < this.start || end > this.end || start >= end) {
      throw new Error(`block range [${start}, ${end}) is not inside the loaded blocks [${this.start}, ${this.end})`)
    }
  }
}

/** Token embeddings, final norm and LM head: everything a client computes itself. */
export class ModelHead {
  readonly config: ModelConfig
  private readonly weights: HeadWeights
  private readonly ops: Ops

  private constructor (config: ModelConfig, weights: HeadWeights, ops: Ops) {
    this.config = config
    this.weights = weights
    this.ops = ops
  }

  static async load (source: ModelSource, options: LoadOptions = {}): Promise<ModelHead> {
    const ops = options.ops ?? defaultRegistry.ops()
    return new ModelHead(source.config, prepareHeadWeights(ops, await loadHeadWeights(source, options)), ops)
  }

  /** embedding rows of `tokens` -> hidden states [T, dim] */
  embed (tokens: number[]): Float32Array {
    const { dim, vocabSize } = this.config
    const table = this.weights.tokenEmbedding
    const bytesPerRow = rowBytes(table.dtype, dim)
    const out = new Float32Array(tokens.length * dim)
    tokens.forEach((id, t) => {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
        throw new RangeError(`token id ${id} is out of range [0, ${vocabSize})`)
      }
      dequantizeRow(table.dtype, table.data, id * bytesPerRow, dim, out, t * dim)
    })
    return out
  }

  /** final norm + LM head over hidden states [T, dim] -> logits [T, vocab] */
  logits (hidden: Float32Array, T: number): Float32Array {
    const { dim, vocabSize, rmsNormEps } = this.config
    const normed = new Float32Array(T * dim)
    this.ops.rmsNorm(normed, hidden, this.weights.outputNorm, T, dim, rmsNormEps)
    const out = new Float32Array(T * vocabSize)
    this.ops.matmul(out, this.weights.output, normed, T)
    return out
  }
}

/** One generation's state on a LocalModel. */
export interface LocalSession {
  /** tokens processed so far */
  readonly position: number
  readonly maxLength: number
  /**
   * Runs `tokens` from the current position; returns the logits [vocab] of the last token, or
   * [tokens.length, vocab] with `allLogits`. Throws if the session would exceed maxLength.
   */
  forward: (tokens: number[], options?: { allLogits?: boolean }) => Float32Array
}

/** A whole model in one process: head + all blocks. */
export class LocalModel {
  readonly config: ModelConfig
  readonly head: ModelHead
  readonly blocks: BlockStack

  private constructor (head: ModelHead, blocks: BlockStack) {
    this.config = head.config
    this.head = head
    this.blocks = blocks
  }

  static async load (source: ModelSource, options: LoadOptions = {}): Promise<LocalModel> {
    const head = await ModelHead.load(source, options)
    const blocks = await BlockStack.load(source, { start: 0, end: source.config.nLayers }, options)
    return new LocalModel(head, blocks)
  }

  createSession (maxLength: number = this.config.contextLength): LocalSession {
    if (maxLength > this.config.contextLength) {
      throw new Error(`session length ${maxLength} exceeds the model's context length ${this.config.contextLength}`)
    }
    const cache = this.blocks.createCache(maxLength)
    const { vocabSize } = this.config
    return {
      get position () { return cache.length },
      maxLength,
      forward: (tokens, options = {}) => {
        if (tokens.length === 0) throw new Error('forward needs at least one token')
        if (cache.length + tokens.length > maxLength) {
          throw new Error(`sequence of ${cache.length + tokens.length} tokens exceeds the session's maximum length ${maxLength}`)
        }
        const T = tokens.length
        const hidden = this.blocks.forward(cache, this.head.embed(tokens), T)
        if (options.allLogits === true) return this.head.logits(hidden, T)
        const last = hidden.subarray((T - 1) * this.config.dim)
        return this.head.logits(last, 1).subarray(0, vocabSize)
      }
    }
  }
}
