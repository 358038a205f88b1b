/**
 * Finds the Mesa 25 lavapipe that scripts/setup-lavapipe.sh unpacks into `<repo>/.cache/lavapipe/` and points the
 * Vulkan loader at it (VK_ICD_FILENAMES, XDG_RUNTIME_DIR), unless VK_ICD_FILENAMES is already set. Must run before
 * the first WebGPU adapter request. Node only; returns the ICD file used, or undefined.
 */
import { existsSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export function useLocalLavapipe (): string | undefined {
  if (process.env.VK_ICD_FILENAMES !== undefined && process.env.VK_ICD_FILENAMES !== '') return process.env.VK_ICD_FILENAMES
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
