/**
 * @swarm/node: serving transformer blocks to the swarm. So far: inspecting which tensors (and bytes) a node
 * serving a block range loads. Serving and the DHT come later.
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
