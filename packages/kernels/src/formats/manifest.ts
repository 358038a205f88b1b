/**
 * The weights manifest of a model: every tensor's name, stored dtype, shape, size and sha256. Together with the
 * config it names a model in the swarm (protocol's computeModelId), so different weights under one name never mix.
 * Hashing reads each tensor once, one at a time (nothing is kept); the result is cached per file under
 * `$XDG_CACHE_HOME/swarm/manifests` (or ~/.cache/...), keyed by path, size and mtime, so restarts are instant.
 */
import { createHash } from 'node:crypto'
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import type { ModelSource } from '../types.js'

export interface ManifestEntry {
  name: string
  dtype: string
  shape: number[]
  byteLength: number
  /** hex sha256 of the stored bytes */
  sha256: string
}

const CACHE_VERSION = 1

/** The manifest of every tensor of `source`, sorted by name. */
export async function weightsManifest (source: ModelSource, options: { signal?: AbortSignal, cacheDir?: string | null } = {}): Promise<ManifestEntry[]> {
  const cacheDir = options.cacheDir === undefined ? defaultCacheDir() : options.cacheDir
  const fingerprint = await fileFingerprint(source.path)
  const cacheFile = cacheDir === null ? undefined : join(cacheDir, `${createHash('sha256').update(fingerprint).digest('hex').slice(0, 32)}.json`)
  if (cacheFile !== undefined) {
    const cached = await readCached(cacheFile, fingerprint)
    if (cached !== undefined) return cached
  }
  const entries: ManifestEntry[] = []
  const names = [...source.tensors.keys()].sort()
  for (const name of names) {
    options.signal?.throwIfAborted()
    const info = source.tensors.get(name)!
    const tensor = await source.loadTensor(name, { signal: options.signal })
    const sha256 = createHash('sha256').update(tensor.data).digest('hex')
    entries.push({ name, dtype: info.dtype, shape: [...info.shape], byteLength: info.byteLength, sha256 })
  }
  if (cacheFile !== undefined && cacheDir !== null) {
    try {
      await mkdir(cacheDir, { recursive: true })
      await writeFile(cacheFile, JSON.stringify({ version: CACHE_VERSION, fingerprint, entries }))
    } catch {
      // a read-only home only costs the hashing next time
    }
  }
  return entries
}

function defaultCacheDir (): string {
  const base = process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache')
  return join(base, 'swarm', 'manifests')
}

/** path, size and mtime of the model file, or of every file in a model directory */
async function fileFingerprint (path: string): Promise<string> {
  const full = resolve(path)
  const info = await stat(full)
  if (!info.isDirectory()) return `${full}|${info.size}|${info.mtimeMs}`
  const parts = [full]
  for (const entry of (await readdir(full, { withFileTypes: true })).sort((a, b) => a.name < b.name ? -1 : 1)) {
    if (!entry.isFile()) continue
    const s = await stat(join(full, entry.name))
    parts.push(`${entry.name}|${s.size}|${s.mtimeMs}`)
  }
  return parts.join('\n')
}

async function readCached (file: string, fingerprint: string): Promise<ManifestEntry[] | undefined> {
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as { version?: number, fingerprint?: string, entries?: ManifestEntry[] }
    if (parsed.version === CACHE_VERSION && parsed.fingerprint === fingerprint && Array.isArray(parsed.entries)) return parsed.entries
  } catch {
    // missing or unreadable: recompute
  }
  return undefined
}
