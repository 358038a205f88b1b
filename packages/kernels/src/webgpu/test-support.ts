/**
 * Shared by the WebGPU tests: an executor on lavapipe (or a real GPU), failing loudly when none can be had
 * (SWARM_SKIP_WEBGPU=1 skips them explicitly instead). The comparison helpers are in ../conformance-support.ts.
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
