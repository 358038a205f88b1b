/**
 * Finds the Mesa 25 lavapipe that scripts/setup-lavapipe.sh unpacks into `<repo>/.cache/lavapipe/` and points the
 * Vulkan loader at it (VK_ICD_FILENAMES, XDG_RUNTIME_DIR). Not when VK_ICD_FILENAMES is already set, nor when the
 * machine has GPU device nodes (/dev/dri/renderD*, /dev/nvidia*: its own drivers come first), unless
 * SWARM_WEBGPU_LAVAPIPE=1; SWARM_WEBGPU_LAVAPIPE=0 never uses it. Must run before the first adapter request (in
 * Node's main thread: a worker's process.env is a copy the Vulkan loader does not see). Returns the ICD file in
 * effect, or undefined.
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

function hasGpuDeviceNodes (): boolean {
  try {
    if (readdirSync('/dev/dri').some(name => name.startsWith('renderD'))) return true
  } catch {}
  try {
    return readdirSync('/dev').some(name => /^nvidia\d+$/.test(name))
  } catch {
    return false
  }
}

export function useLocalLavapipe (): string | undefined {
  if (process.env.VK_ICD_FILENAMES !== undefined && process.env.VK_ICD_FILENAMES !== '') return process.env.VK_ICD_FILENAMES
  const choice = process.env.SWARM_WEBGPU_LAVAPIPE
  if (choice === '0' || (choice !== '1' && hasGpuDeviceNodes())) return undefined
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const icd = join(dir, '.cache', 'lavapipe', 'lvp_icd.json')
    if (existsSync(icd)) {
      process.env.VK_ICD_FILENAMES = icd
      if (process.env.XDG_RUNTIME_DIR === undefined) {
        const runtimeDir = join(dir, '.cache', 'lavapipe', 'xdg-runtime')
        mkdirSync(runtimeDir, { recursive: true, mode: 0o700 })
        process.env.XDG_RUNTIME_DIR = runtimeDir
      }
      return icd
    }
    const parent = dirname(dir)
    if (parent === dir) return undefined
    dir = parent
  }
}
