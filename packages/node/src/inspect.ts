/** What a node serving a block range would load: read from the model's headers only, no tensor data. */
import type { ModelSource, TensorInfo } from '@swarm/kernels'

/** blocks [start, end) */
export interface BlockRange {
  start: number
  end: number
}

/** A block range that does not fit the model. */
export class InvalidBlockRangeError extends RangeError {
  constructor (message: string) {
    super(message)
    this.name = 'InvalidBlockRangeError'
  }
}

/** Tensors shared by every block that a block server loads too (Llama 3's RoPE frequency factors). */
const SHARED_BLOCK_TENSORS = ['rope_freqs.weight']

export function checkBlockRange (range: BlockRange, nLayers: number): void {
  const { start, end } = range
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end > nLayers || start >= end) {
    throw new InvalidBlockRangeError(`invalid block range [${start}, ${end}) for a model of ${nLayers} blocks`)
  }
}

/** the tensors a node serving `range` loads, in file order of blocks, and their total bytes */
export function blockTensors (source: ModelSource, range: BlockRange): { tensors: TensorInfo[], totalBytes: number } {
  checkBlockRange(range, source.config.nLayers)
  const tensors: TensorInfo[] = []
  for (const info of source.tensors.values()) {
    const block = /^blk\.(\d+)\./.exec(info.name)
    const inRange = block !== null && Number(block[1]) >= range.start && Number(block[1]) < range.end
    if (inRange || SHARED_BLOCK_TENSORS.includes(info.name)) tensors.push(info)
  }
  const blockOf = (t: TensorInfo): number => Number(/^blk\.(\d+)\./.exec(t.name)?.[1] ?? -1)
  tensors.sort((a, b) => blockOf(a) - blockOf(b))
  return { tensors, totalBytes: tensors.reduce((sum, t) => sum + t.byteLength, 0) }
}

/** parses "A:B" into blocks [A, B) */
export function parseBlockRange (text: string): BlockRange {
  const match = /^(\d+):(\d+)$/.exec(text.trim())
  if (match === null) throw new InvalidBlockRangeError(`block range must look like START:END (blocks [START, END)), got '${text}'`)
  return { start: Number(match[1]), end: Number(match[2]) }
}
