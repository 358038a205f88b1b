/** Open a model on disk by what it is: a GGUF file or a Hugging Face directory. Headers only; tensors on demand. */
import { open, stat } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import type { ModelSource, Tensor, TensorInfo } from '../types.js'
import { ModelNotFoundError, UnknownTensorError } from './errors.js'
import { GGUF_MAGIC, readGgufHeaderFrom } from './gguf.js'
import type { GgufHeader, GgufTensorInfo } from './gguf.js'
import { generationDefaultsFromGguf, modelConfigFromGguf, specialsFromGguf } from './gguf-config.js'
import { openHfModel } from './hf.js'
import type { HfModelSource } from './hf.js'
import { readExact } from './io.js'
import type { ReadStats } from './io.js'
import { checkModelTensors } from './tensor-names.js'

/** A GGUF model source with its parsed header and the read counters of its tensor loads. */
export interface GgufModelSource extends ModelSource {
  format: 'gguf'
  header: GgufHeader
  stats: ReadStats
}

/** Open a GGUF file: parses the header, keeps the file open for positional tensor reads. */
export async function openGgufModel (path: string, options: { signal?: AbortSignal } = {}): Promise<GgufModelSource> {
  const handle: FileHandle = await open(path, 'r')
  let header: GgufHeader
  let byName: Map<string, GgufTensorInfo>
  try {
    header = await readGgufHeaderFrom(handle, options)
    byName = new Map(header.tensors.map((t) => [t.name, t]))
  } catch (err) {
    await handle.close()
    throw err
  }
  const tensors = new Map<string, TensorInfo>(header.tensors.map((t) => [t.name, { name: t.name, dtype: t.dtype, shape: t.shape, byteLength: t.byteLength }]))
  let config
  try {
    config = modelConfigFromGguf(header.metadata, tensors)
    checkModelTensors(config, tensors, `corrupt GGUF: ${path}`)
  } catch (err) {
    await handle.close()
    throw err
  }
  const stats: ReadStats = { bytesRead: 0, reads: 0 }
  let closed = false
  return {
    format: 'gguf',
    path,
    config,
    specials: specialsFromGguf(header.metadata),
    generation: generationDefaultsFromGguf(header.metadata),
    tensors,
    metadata: header.metadata,
    header,
    stats,
    loadTensor: async (name: string, opts: { signal?: AbortSignal } = {}): Promise<Tensor> => {
      if (closed) throw new Error(`model ${path} is closed`)
      const info = byName.get(name)
      if (info === undefined) throw new UnknownTensorError(`model ${path} has no tensor ${name}`)
      const data = await readExact(handle, info.offset, info.byteLength, { signal: opts.signal, stats, what: `tensor ${name}` })
      return { name, dtype: info.dtype, shape: [...info.shape], data }
    },
    close: async () => {
      if (closed) return
      closed = true
      await handle.close()
    }
  }
}

async function isGgufFile (path: string): Promise<boolean> {
  const handle = await open(path, 'r')
  try {
    const magic = new Uint8Array(4)
    const { bytesRead } = await handle.read(magic, 0, 4, 0)
    return bytesRead === 4 && new DataView(magic.buffer).getUint32(0, true) === GGUF_MAGIC
  } finally {
    await handle.close()
  }
}

/**
 * Open a model: a GGUF file (by its magic, any extension) or a Hugging Face directory with config.json.
 * Throws ModelNotFoundError for a missing path or anything else.
 */
export async function openModel (path: string, options: { signal?: AbortSignal } = {}): Promise<GgufModelSource | HfModelSource> {
  options.signal?.throwIfAborted()
  let kind
  try {
    kind = await stat(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ModelNotFoundError(`no such file or directory: ${path}`, { cause: err })
    throw err
  }
  if (kind.isDirectory()) {
    const hasConfig = await stat(join(path, 'config.json')).then((s) => s.isFile(), () => false)
    if (hasConfig) return await openHfModel(path, options)
    throw new ModelNotFoundError(`not a GGUF file or Hugging Face directory: ${path} (a directory without config.json)`)
  }
  if (kind.isFile() && await isGgufFile(path)) return await openGgufModel(path, options)
  throw new ModelNotFoundError(`not a GGUF file or Hugging Face directory: ${path}`)
}
