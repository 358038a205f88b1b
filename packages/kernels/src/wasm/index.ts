/**
 * The WebAssembly SIMD + threads CPU backend (Node): kernels compiled from assembly/ by `pnpm run build:wasm`.
 *
 * @example
 * ```ts
 * const wasm = await createWasmBackend({ threads: 2 })
 * const registry = new BackendRegistry()
 * registry.register(wasm, 10)
 * const model = await LocalModel.load(source, { ops: registry.ops() })
 * ```
 */
export { createWasmBackend } from './backend.js'
export type { WasmBackend, WasmBackendOptions } from './backend.js'
export { selectBackend, BACKEND_CHOICES } from './select.js'
export type { BackendChoice, SelectedBackend } from './select.js'
