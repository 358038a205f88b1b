/**
 * The WebGPU backend: WGSL kernels for whole transformer blocks through the npm `webgpu` package (Dawn) in Node or
 * `navigator.gpu` in browsers; Mesa's lavapipe runs them on a CPU for tests (scripts/setup-lavapipe.sh).
 *
 * @example
 * ```ts
 * const executor = await createWebGpuExecutor()           // throws WebGpuUnavailableError without an adapter
 * const model = await LocalModel.load(source, { executor })
 * const logits = await model.createSession(256).forwardAsync(tokens)
 * ```
 */
export { createWebGpuExecutor, WebGpuBlockExecutor } from './executor.js'
export type { WebGpuExecutor, WebGpuExecutorOptions } from './executor.js'
export { WebGpuUnavailableError, requestWebGpuDevice } from './device.js'
export type { WebGpuDevice } from './device.js'
export { WebGpuOps } from './ops.js'
export { measureReadBandwidth } from './bandwidth.js'
export { GPU_MATMUL_DTYPES } from './shaders.js'
export { useLocalLavapipe } from './lavapipe-env.js'
