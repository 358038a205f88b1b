/** Opening a model for the CLI commands. */
import { stat, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { LocalModel, loadTokenizer, openModel, selectBackend, type BackendChoice, type BlockExecutor, type ModelSource, type Tokenizer } from '@swarm/kernels'

/** opens a GGUF file or HF directory (headers only); a missing path is a ModelNotFoundError */
export async function openSource (path: string, signal?: AbortSignal): Promise<ModelSource> {
  return await openModel(path, { signal })
}

export interface LoadWeightsOptions {
  signal?: AbortSignal
  /** compute threads (wasm backend; default every core) */
  threads?: number
  /** compute backend (default 'auto': wasm when it loads, else the CPU reference; 'webgpu' runs the blocks on a GPU) */
  backend?: BackendChoice
}

/** reads the weights of an opened model; `loadMs` is the time that took; `backend`/`threads` say what runs it */
export async function loadWeights (source: ModelSource, options: LoadWeightsOptions): Promise<{ model: LocalModel, loadMs: number, backend: string, threads: number, executor?: BlockExecutor }> {
  const started = performance.now()
  const selected = await selectBackend(options.backend ?? 'auto', { threads: options.threads })
  const model = await LocalModel.load(source, { signal: options.signal, threads: selected.threads, ops: selected.ops, executor: selected.executor })
  return { model, loadMs: performance.now() - started, backend: selected.name, threads: selected.threads, executor: selected.executor }
}

export interface OpenedModel {
  source: ModelSource
  tokenizer: Tokenizer
  model: LocalModel
  /** time to read the weights (headers and tokenizer excluded) */
  loadMs: number
}

/** opens `path` and loads tokenizer and weights; the caller closes `source` */
export async function loadLocalModel (path: string, options: LoadWeightsOptions): Promise<OpenedModel> {
  const source = await openSource(path, options.signal)
  try {
    const tokenizer = await loadTokenizer(source)
    return { source, tokenizer, ...await loadWeights(source, options) }
  } catch (error) {
    await source.close()
    throw error
  }
}

/** bytes on disk of a model file, or of every file under a model directory */
export async function modelBytes (path: string): Promise<number> {
  const info = await stat(path)
  if (!info.isDirectory()) return info.size
  let total = 0
  for (const entry of await readdir(path, { withFileTypes: true })) {
    if (entry.isFile() || entry.isDirectory()) total += await modelBytes(join(path, entry.name))
  }
  return total
}
