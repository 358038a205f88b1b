import type { DeviceKvCache } from './executor.js'

/**
 * The keys and values of one inference session for a contiguous range of blocks, preallocated for `maxLength`
 * positions. `length` counts the positions already written (the next token's position). With a block executor
 * (WebGPU) the keys and values live in device memory (`device`) and the host arrays are empty.
 */
export class KvCache {
  /** per block in the range: [maxLength, nKvHeads * headDim] */
  readonly keys: Float32Array[]
  readonly values: Float32Array[]
  readonly maxLength: number
  /** the device memory holding keys and values, when a block executor runs the blocks */
  readonly device?: DeviceKvCache
  length = 0

  constructor (nBlocks: number, maxLength: number, kvDim: number, device?: DeviceKvCache) {
    if (!Number.isInteger(maxLength) || maxLength < 1) throw new Error(`invalid cache length ${maxLength}`)
    this.maxLength = maxLength
    this.device = device
    const perBlock = device === undefined ? maxLength * kvDim : 0
    this.keys = Array.from({ length: nBlocks }, () => new Float32Array(perBlock))
    this.values = Array.from({ length: nBlocks }, () => new Float32Array(perBlock))
  }

  /** bytes held by this cache (host or device) */
  get byteLength (): number {
    return this.device?.byteLength ?? this.keys.reduce((n, k) => n + k.byteLength, 0) * 2
  }

  /** frees device memory now (host memory goes with the last reference) */
  dispose (): void {
    this.device?.destroy()
  }

  /** forget positions from `length` on (e.g. to replay or to branch) */
  truncate (length: number): void {
    if (length < 0 || length > this.length) throw new Error(`cannot truncate cache of ${this.length} to ${length}`)
    this.length = length
  }
}

/** bytes of KV cache one position needs over `nBlocks` blocks */
export function kvBytesPerToken (nBlocks: number, kvDim: number): number {
  return nBlocks * kvDim * 2 * Float32Array.BYTES_PER_ELEMENT
}
