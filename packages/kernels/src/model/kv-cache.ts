/**
 * The keys and values of one inference session for a contiguous range of blocks, preallocated for `maxLength`
 * positions. `length` counts the positions already written (the next token's position).
 */
export class KvCache {
  /** per block in the range: [maxLength, nKvHeads * headDim] */
  readonly keys: Float32Array[]
  readonly values: Float32Array[]
  readonly maxLength: number
  length = 0

  constructor (nBlocks: number, maxLength: number, kvDim: number) {
    if (!Number.isInteger(maxLength) || maxLength < 1) throw new Error(`invalid cache length ${maxLength}`)
    this.maxLength = maxLength
    this.keys = Array.from({ length: nBlocks }, () => new Float32Array(maxLength * kvDim))
    this.values = Array.from({ length: nBlocks }, () => new Float32Array(maxLength * kvDim))
  }

  /** bytes held by this cache */
  get byteLength (): number {
    return this.keys.reduce((n, k) => n + k.byteLength, 0) * 2
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
