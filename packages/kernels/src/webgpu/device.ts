/**
 * Getting a WebGPU device: `navigator.gpu` where the environment has one (browsers, Deno), else the npm `webgpu`
 * package (Dawn) in Node, imported only when asked for, so the package loads and runs without it.
 */

/** No WebGPU adapter or device could be had (no `webgpu` module, no Vulkan/Metal/D3D driver, or lavapipe missing). */
export class WebGpuUnavailableError extends Error {
  override name = 'WebGpuUnavailableError'
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}

export interface WebGpuDevice {
  device: GPUDevice
  /** adapter description, e.g. 'llvmpipe (lavapipe)' */
  adapterName: string
  isFallbackAdapter: boolean
  /** WGSL has dot4I8Packed (language feature packed_4x8_integer_dot_product) */
  packedDot: boolean
}

// Dawn's GPU instance must stay reachable for the life of the process: when it is garbage-collected while
// devices live, Dawn segfaults.
let dawnInstance: GPU | undefined

async function gpuEntryPoint (): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator
  if (nav?.gpu !== undefined) return nav.gpu
  if (dawnInstance !== undefined) return dawnInstance
  let dawn: typeof import('webgpu')
  try {
    dawn = await import('webgpu')
  } catch (error) {
    throw new WebGpuUnavailableError(`the npm package 'webgpu' (Dawn) could not be loaded: ${(error as Error).message}`, { cause: error })
  }
  // Dawn's Vulkan backend wants a runtime dir; without one it logs warnings on every start
  if (typeof process !== 'undefined' && process.env.XDG_RUNTIME_DIR === undefined) process.env.XDG_RUNTIME_DIR = '/tmp'
  Object.assign(globalThis, dawn.globals) // GPUBufferUsage, GPUMapMode, ... as in browsers
  dawnInstance = dawn.create([])
  return dawnInstance
}

const HINT = 'no WebGPU adapter: on Linux without a GPU install Mesa 25 lavapipe (bash scripts/setup-lavapipe.sh) and ' +
  'export the VK_ICD_FILENAMES / LD_LIBRARY_PATH / XDG_RUNTIME_DIR it prints'

/** Requests an adapter and a device with the adapter's full buffer limits. Throws WebGpuUnavailableError. */
export async function requestWebGpuDevice (): Promise<WebGpuDevice> {
  const gpu = await gpuEntryPoint()
  let adapter: GPUAdapter | null
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' })
  } catch (error) {
    throw new WebGpuUnavailableError(`${HINT} (${(error as Error).message})`, { cause: error })
  }
  if (adapter === null) throw new WebGpuUnavailableError(HINT)
  const limits = adapter.limits
  try {
    const device = await adapter.requestDevice({
      requiredLimits: {
        maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
        maxBufferSize: limits.maxBufferSize,
        maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
        maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage
      }
    })
    const info = adapter.info
    const adapterName = [info?.description, info?.device, info?.vendor].find(s => s !== undefined && s !== '') ?? 'unknown adapter'
    const packedDot = gpu.wgslLanguageFeatures?.has('packed_4x8_integer_dot_product') ?? false
    return { device, adapterName, isFallbackAdapter: (info as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter ?? false, packedDot }
  } catch (error) {
    throw new WebGpuUnavailableError(`requestDevice failed: ${(error as Error).message}`, { cause: error })
  }
}
