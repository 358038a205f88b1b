/**
 * A block executor runs whole transformer blocks on a device with its own memory (WebGPU): weights are uploaded
 * once in their stored dtype, each session's KV cache lives on the device, and only hidden states cross per step.
 * Its forward is asynchronous because reading device memory back is. BlockStack uses one when given (LoadOptions.executor)
 * instead of the per-op `Ops`.
 */
import type { ModelConfig, Tensor } from '../types.js'
import type { BlockWeights } from './llama.js'

/** the device memory of one session's KV cache over a range of blocks */
export interface DeviceKvCache {
  /** bytes held on the device */
  readonly byteLength: number
  /** frees the device memory; the cache cannot be used afterwards */
  destroy: () => void
}

/** one block's weights on the device (opaque to the model code) */
export interface DeviceBlock {
  readonly byteLength: number
}

export interface BlockExecutor {
  /** e.g. 'webgpu (llvmpipe)' */
  readonly name: string
  /** uploads one block's weights in their stored format */
  uploadBlock: (config: ModelConfig, weights: BlockWeights) => DeviceBlock
  createCache: (config: ModelConfig, nBlocks: number, maxLength: number) => DeviceKvCache
  /**
   * Runs hidden states [T, dim] through `blocks` (in order; cache slot i belongs to blocks[i]) for positions
   * startPos..startPos+T-1, writing their keys/values into the cache; resolves to the new hidden states.
   */
  forward: (config: ModelConfig, blocks: DeviceBlock[], cache: DeviceKvCache, hidden: Float32Array,
    T: number, startPos: number, invFreqs: Float64Array, options?: { signal?: AbortSignal }) => Promise<Float32Array>
  /** uploads the final norm and LM head (optional: without it the head runs on the host ops) */
  uploadHead?: (config: ModelConfig, outputNorm: Float32Array, output: Tensor) => DeviceBlock
  /** final norm + LM head over hidden states [T, dim] -> logits [T, vocab] */
  logits?: (config: ModelConfig, head: DeviceBlock, hidden: Float32Array, T: number, options?: { signal?: AbortSignal }) => Promise<Float32Array>
  /** frees the device */
  close: () => void
}
