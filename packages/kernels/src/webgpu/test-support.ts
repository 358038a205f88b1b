/**
 * Shared by the WebGPU tests: an executor on lavapipe (or a real GPU), failing loudly when none can be had
 * (SWARM_SKIP_WEBGPU=1 skips them explicitly instead), and the comparison helpers of the conformance style.
 */
import { createWebGpuExecutor, type WebGpuBlockExecutor } from './executor.js'
import { useLocalLavapipe } from './lavapipe-env.js'

export const SKIP_WEBGPU = process.env.SWARM_SKIP_WEBGPU === '1'

let shared: Promise<WebGpuBlockExecutor> | undefined

/** one executor per test process (Dawn instances are not freed until exit anyway) */
export async function testExecutor (): Promise<WebGpuBlockExecutor> {
  shared ??= (async () => {
    const icd = useLocalLavapipe()
    try {
      const executor = await createWebGpuExecutor()
      console.log(`WebGPU tests run on ${executor.name}${icd !== undefined ? ` (ICD ${icd})` : ''}`)
      return executor
    } catch (error) {
      const banner = '#'.repeat(100)
      console.error(`${banner}\n# WebGPU TESTS CANNOT RUN: ${(error as Error).message}\n` +
        '# run `bash scripts/setup-lavapipe.sh` (needs apt access; scripts/test.sh does it), or set SWARM_SKIP_WEBGPU=1 to skip them\n' + banner)
      throw error
    }
  })()
  return await shared
}

export function nmse (out: Float32Array, ref: Float32Array): number {
  let err = 0
  let norm = 0
  for (let i = 0; i < ref.length; i++) {
    const d = out[i] - ref[i]
    err += d * d
    norm += ref[i] * ref[i]
  }
  if (out.length !== ref.length || !Number.isFinite(err)) return Infinity
  return norm === 0 ? err : err / norm
}

/** mulberry32 uniform in [-1, 1) */
export function randomArray (n: number, seed: number, scale = 1): Float32Array {
  let a = seed >>> 0
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    out[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * scale
  }
  return out
}

export function argmax (a: Float32Array): number {
  let best = 0
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i
  return best
}
