/**
 * Model runtime: a node runs a `BlockStack` (blocks [start, end) with a KV cache per session) on hidden states it
 * receives; a client runs the `ModelHead` (embeddings, final norm, LM head); `LocalModel` is both in one process.
 */
import { dequantizeRow, rowBytes } from '../quant/index.js'
import { defaultRegistry } from '../backend.js'
import type { Ops } from '../backend-types.js'
import { COL_TILE, colTileSlice, type ModelConfig, type ModelSource } from '../types.js'
import type { BlockExecutor, DeviceBlock } from './executor.js'
import { KvCache } from './kv-cache.js'
import { createRunState, forwardBlock, forwardBlocks, type BlockWeights } from './llama.js'
import { ropeInverseFrequencies } from './rope-frequencies.js'
import {
  loadBlockWeights, loadHeadWeights, loadRopeFreqFactors, prepareBlockWeights, prepareHeadWeights, type HeadWeights
} from './weights.js'

export { KvCache, kvBytesPerToken } from './kv-cache.js'
export type { BlockExecutor, DeviceBlock, DeviceKvCache } from './executor.js'
export { forwardBlock, forwardBlocks, createRunState, type BlockWeights, type RunState } from './llama.js'
export { ropeInverseFrequencies } from './rope-frequencies.js'
export { loadBlockWeights, loadHeadWeights, type HeadWeights } from './weights.js'

export interface LoadOptions {
  signal?: AbortSignal
  /** an explicit op set (default: the default registry's best backend per op) */
  ops?: Ops
  /** worker threads for backends that use them (the CPU reference runs on the calling thread) */
  threads?: number
  /**
   * runs the blocks on a device instead of `ops` (WebGPU): weights are uploaded there and not kept on the host;
   * use `forwardAsync` (the synchronous `forward` throws). ModelHead.load puts the final norm and LM head there too
   * (`logitsAsync`); the embedding rows are looked up on the host.
   */
  executor?: BlockExecutor
}

/** `forward` was called on blocks that run on an asynchronous block executor */
export class AsyncExecutorError extends Error {
  override name = 'AsyncExecutorError'
}

/** Blocks [start, end) of a model, loaded alone. */
export class BlockStack {
  readonly config: ModelConfig
  readonly start: number
  readonly end: number
  /** the block executor running these blocks, if any (else the host `ops`) */
  readonly executor?: BlockExecutor
  private readonly blocks: BlockWeights[]
  private readonly deviceBlocks: DeviceBlock[]
  private readonly invFreqs: Float64Array
  private readonly ops: Ops

  private constructor (config: ModelConfig, start: number, end: number, blocks: BlockWeights[], invFreqs: Float64Array, ops: Ops,
    executor?: BlockExecutor, deviceBlocks: DeviceBlock[] = []) {
    this.config = config
    this.start = start
    this.end = end
    this.blocks = blocks
    this.invFreqs = invFreqs
    this.ops = ops
    this.executor = executor
    this.deviceBlocks = deviceBlocks
  }

  static async load (source: ModelSource, range: { start: number, end: number }, options: LoadOptions = {}): Promise<BlockStack> {
    const { start, end } = range
    const n = source.config.nLayers
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > n || start >= end) {
      throw new Error(`invalid block range [${start}, ${end}) for a model of ${n} blocks`)
    }
    const ops = options.ops ?? defaultRegistry.ops()
    const invFreqs = ropeInverseFrequencies(source.config, await loadRopeFreqFactors(source, options))
    const executor = options.executor
    if (executor !== undefined) {
      const deviceBlocks: DeviceBlock[] = []
      for (let b = start; b < end; b++) deviceBlocks.push(executor.uploadBlock(source.config, await loadBlockWeights(source, b, options)))
      return new BlockStack(source.config, start, end, [], invFreqs, ops, executor, deviceBlocks)
    }
    const blocks: BlockWeights[] = []
    for (let b = start; b < end; b++) blocks.push(prepareBlockWeights(ops, await loadBlockWeights(source, b, options)))
    return new BlockStack(source.config, start, end, blocks, invFreqs, ops)
  }

  /**
   * A fresh KV cache for one session of at most `maxLength` positions, over blocks [range.start, range.end) of
   * this stack (default: all of them). A swarm route may enter a node's range in the middle.
   */
  createCache (maxLength: number, range: { start: number, end: number } = this): KvCache {
    this.checkRange(range)
    const nBlocks = range.end - range.start
    const device = this.executor?.createCache(this.config, nBlocks, maxLength)
    return new KvCache(nBlocks, maxLength, this.config.nKvHeads * this.config.headDim, device)
  }

  /**
   * Runs hidden states [T, dim] through blocks [range.start, range.end) (default: all) at the cache's next
   * positions; returns new hidden states. The cache must have been created for the same range.
   */
  forward (cache: KvCache, hidden: Float32Array, T: number, range: { start: number, end: number } = this): Float32Array {
    if (this.executor !== undefined) {
      throw new AsyncExecutorError(`these blocks run on ${this.executor.name}, which is asynchronous: call forwardAsync`)
    }
    this.checkCache(cache, range)
    const x = Float32Array.from(hidden)
    const blocks = this.blocks.slice(range.start - this.start, range.end - this.start)
    forwardBlocks(this.ops, this.config, blocks, cache, x, T, this.invFreqs)
    return x
  }

  /**
   * `forward` in pieces, for a caller that must not be blocked for a whole step (a node's networking thread): the
   * step's tokens go through in chunks of `chunkTokens` (the last one shorter), each chunk through every block in turn,
   * and the generator yields after each block of each chunk, reporting the tokens of that chunk. Its return value is
   * the output of `forward` (the same values: every token meets the same weights, cache entries and kernels). The cache
   * advances chunk by chunk; if the caller stops early, or a block throws, the cache is back where the step began.
   */
  * forwardInPieces (cache: KvCache, hidden: Float32Array, T: number, range: { start: number, end: number } = this,
    chunkTokens: () => number = () => T): Generator<number, Float32Array, void> {
    if (this.executor !== undefined) {
      throw new AsyncExecutorError(`these blocks run on ${this.executor.name}, which is asynchronous: call forwardAsync`)
    }
    this.checkCache(cache, range)
    const dim = this.config.dim
    if (hidden.length !== T * dim) throw new Error(`hidden states hold ${hidden.length} values, expected ${T} x ${dim}`)
    const begin = cache.length
    if (begin + T > cache.maxLength) {
      throw new Error(`sequence of ${begin + T} tokens exceeds the session's maximum length ${cache.maxLength}`)
    }
    const x = Float32Array.from(hidden)
    const blocks = this.blocks.slice(range.start - this.start, range.end - this.start)
    let done = false
    try {
      for (let t0 = 0; t0 < T;) {
        const n = Math.max(1, Math.min(T - t0, Math.floor(chunkTokens())))
        const xs = x.subarray(t0 * dim, (t0 + n) * dim)
        const s = createRunState(this.config, n)
        for (let i = 0; i < blocks.length; i++) {
          forwardBlock(this.ops, this.config, blocks[i], s, xs, cache.keys[i], cache.values[i], begin + t0, this.invFreqs)
          yield n
        }
        t0 += n
        cache.length = begin + t0
      }
      done = true
      return x
    } finally {
      if (!done) cache.length = begin
    }
  }

  /**
   * `forward` for every backend: on the host ops it runs synchronously (the same work as `forward`); on a block
   * executor (WebGPU) only the hidden states cross, the KV cache stays on the device.
   */
  async forwardAsync (cache: KvCache, hidden: Float32Array, T: number, range: { start: number, end: number } = this,
    options: { signal?: AbortSignal } = {}): Promise<Float32Array> {
    const executor = this.executor
    if (executor === undefined) return this.forward(cache, hidden, T, range)
    this.checkCache(cache, range)
    if (cache.device === undefined) throw new Error('the cache was not created by this stack (it has no device memory)')
    if (hidden.length !== T * this.config.dim) throw new Error(`hidden states hold ${hidden.length} values, expected ${T} x ${this.config.dim}`)
    const startPos = cache.length
    if (startPos + T > cache.maxLength) {
      throw new Error(`sequence of ${startPos + T} tokens exceeds the session's maximum length ${cache.maxLength}`)
    }
    const blocks = this.deviceBlocks.slice(range.start - this.start, range.end - this.start)
    // the positions are taken before the device runs them: a second step on this cache issued before this one
    // resolves queues behind it on the device and starts where it ends
    cache.length = startPos + T
    try {
      return await executor.forward(this.config, blocks, cache.device, hidden, T, startPos, this.invFreqs, options)
    } catch (error) {
      if (cache.length === startPos + T) cache.length = startPos
      throw error
    }
  }

  private checkCache (cache: KvCache, range: { start: number, end: number }): void {
    this.checkRange(range)
    if (cache.keys.length !== range.end - range.start) {
      throw new Error(`the cache holds ${cache.keys.length} blocks, the range [${range.start}, ${range.end}) has ${range.end - range.start}`)
    }
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
  private readonly executor?: BlockExecutor
  private readonly deviceHead?: DeviceBlock

  private constructor (config: ModelConfig, weights: HeadWeights, ops: Ops, executor?: BlockExecutor, deviceHead?: DeviceBlock) {
    this.config = config
    this.weights = weights
    this.ops = ops
    this.executor = executor
    this.deviceHead = deviceHead
  }

  /**
   * With `options.executor` (and one that takes heads), the final norm and LM head also go to the device:
   * `logitsAsync` runs there. The embedding table stays on the host either way.
   */
  static async load (source: ModelSource, options: LoadOptions = {}): Promise<ModelHead> {
    const ops = options.ops ?? defaultRegistry.ops()
    const weights = await loadHeadWeights(source, options)
    const executor = options.executor
    if (executor?.uploadHead !== undefined && executor.logits !== undefined) {
      return new ModelHead(source.config, weights, ops, executor, executor.uploadHead(source.config, weights.outputNorm, weights.output))
    }
    return new ModelHead(source.config, prepareHeadWeights(ops, weights), ops)
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
      if (table.layout === 'col-tiles') {
        // a tied embedding the wasm backend holds in column tiles: the row is one slice per tile
        const eb = rowBytes(table.dtype, 1)
        for (let c = 0; c < dim; c += COL_TILE) {
          const { offset, length } = colTileSlice(vocabSize, dim, id, c)
          dequantizeRow(table.dtype, table.data, offset * eb, length, out, t * dim + c)
        }
      } else {
        dequantizeRow(table.dtype, table.data, id * bytesPerRow, dim, out, t * dim)
      }
    })
    return out
  }

  /** `logits` on the device when the head was uploaded there, else on the host ops */
  async logitsAsync (hidden: Float32Array, T: number, options: { signal?: AbortSignal } = {}): Promise<Float32Array> {
    if (this.deviceHead === undefined) return this.logits(hidden, T)
    return await this.executor!.logits!(this.config, this.deviceHead, hidden, T, options)
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
  /** `forward` on any backend, including asynchronous block executors (WebGPU) */
  forwardAsync: (tokens: number[], options?: { allLogits?: boolean, signal?: AbortSignal }) => Promise<Float32Array>
  /** frees device memory of the session's KV cache now (a no-op on the host backends) */
  dispose: () => void
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
    const check = (tokens: number[]): void => {
      if (tokens.length === 0) throw new Error('forward needs at least one token')
      if (cache.length + tokens.length > maxLength) {
        throw new Error(`sequence of ${cache.length + tokens.length} tokens exceeds the session's maximum length ${maxLength}`)
      }
    }
    const logits = (hidden: Float32Array, T: number, allLogits: boolean | undefined): Float32Array => {
      if (allLogits === true) return this.head.logits(hidden, T)
      const last = hidden.subarray((T - 1) * this.config.dim)
      return this.head.logits(last, 1).subarray(0, vocabSize)
    }
    return {
      get position () { return cache.length },
      maxLength,
      forward: (tokens, options = {}) => {
        check(tokens)
        const T = tokens.length
        return logits(this.blocks.forward(cache, this.head.embed(tokens), T), T, options.allLogits)
      },
      forwardAsync: async (tokens, options = {}) => {
        check(tokens)
        const T = tokens.length
        const hidden = await this.blocks.forwardAsync(cache, this.head.embed(tokens), T, this.blocks, { signal: options.signal })
        if (options.allLogits === true) return await this.head.logitsAsync(hidden, T, { signal: options.signal })
        return await this.head.logitsAsync(hidden.subarray((T - 1) * this.config.dim), 1, { signal: options.signal })
      },
      dispose: () => cache.dispose()
    }
  }
}
