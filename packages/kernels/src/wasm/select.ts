import { BackendRegistry } from '../backend.js'
import type { Ops } from '../backend-types.js'
import type { BlockExecutor } from '../model/executor.js'
import { createWebGpuExecutor } from '../webgpu/executor.js'
import { useLocalLavapipe } from '../webgpu/lavapipe-env.js'
import { createWasmBackend, type WasmBackend } from './backend.js'

/**
 * which compute backend a CLI runs: the CPU reference, the wasm one, wasm when it loads (else the reference), or
 * WebGPU for the transformer blocks and, in a LocalModel, the final norm and LM head (host ops: wasm, else the
 * reference, for the embeddings)
 */
export type BackendChoice = 'cpu' | 'wasm' | 'auto' | 'webgpu'

export const BACKEND_CHOICES: readonly BackendChoice[] = ['cpu', 'wasm', 'auto', 'webgpu']

export interface SelectedBackend {
  /** the op set to hand to LocalModel/BlockStack/ModelHead.load */
  ops: Ops
  /** 'wasm' or 'cpu-reference' */
  name: string
  /** participating threads (1 for the reference) */
  threads: number
  /** why 'auto' fell back to the reference, if it did */
  fallbackReason?: string
  wasm?: WasmBackend
  /** the block executor (WebGPU) to hand to LocalModel/BlockStack.load with `ops`; call forwardAsync then */
  executor?: BlockExecutor
}

/**
 * Builds the op set of a CLI's `--backend` choice (Node only). 'auto' is the default: the wasm backend with
 * `threads` threads (default every core) when its binary loads, else the CPU reference.
 */
export async function selectBackend (choice: BackendChoice = 'auto', options: { threads?: number } = {}): Promise<SelectedBackend> {
  const registry = new BackendRegistry()
  if (choice === 'cpu') return { ops: registry.ops(['cpu-reference']), name: 'cpu-reference', threads: 1 }
  if (choice === 'webgpu') {
    useLocalLavapipe() // a repo checkout's scripts/setup-lavapipe.sh result, when no Vulkan driver is configured
    const executor = await createWebGpuExecutor() // throws WebGpuUnavailableError with a hint
    const head = await selectBackend('auto', options)
    return { ...head, name: `${executor.name} (embeddings: ${head.name})`, executor }
  }
  try {
    const wasm = await createWasmBackend({ threads: options.threads })
    registry.register(wasm, 10)
    return { ops: registry.ops(), name: wasm.name, threads: wasm.threads, wasm }
  } catch (error) {
    if (choice === 'wasm') throw error
    return { ops: registry.ops(['cpu-reference']), name: 'cpu-reference', threads: 1, fallbackReason: (error as Error).message }
  }
}
