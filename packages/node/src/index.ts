/**
 * @swarm/node: serving transformer blocks to the swarm (`swarm-node serve`, `swarm-node dht`; the CLI is cli.ts). The
 * library surface is the block-range helpers: which tensors (and bytes) a node serving a block range loads.
 *
 * @example
 * ```ts
 * import { openModel } from '@swarm/kernels'
 * import { blockTensors } from '@swarm/node'
 * const source = await openModel('model.gguf')
 * const { tensors, totalBytes } = blockTensors(source, { start: 0, end: 4 })
 * ```
 */
export { blockTensors, checkBlockRange, parseBlockRange, InvalidBlockRangeError, type BlockRange } from './inspect.js'
