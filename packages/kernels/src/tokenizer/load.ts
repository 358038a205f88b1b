import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ModelSource } from '../types.js'
import type { Tokenizer } from '../tokenizer-types.js'
import { GgufTokenizer } from './gguf-tokenizer.js'
import { HfJsonTokenizer } from './hf-tokenizer.js'
import { ggufVocabFromMetadata } from './vocab.js'

/**
 * The tokenizer of an opened model: GGUF from its `tokenizer.ggml.*` metadata (llama.cpp's algorithms), Hugging
 * Face from tokenizer.json in the model directory with tokenizer_config.json / generation_config.json
 * (`source.metadata.tokenizerConfig`, `.generationConfig`).
 */
export async function loadTokenizer (source: ModelSource, options: { signal?: AbortSignal } = {}): Promise<Tokenizer> {
  if (source.format === 'gguf') return new GgufTokenizer(ggufVocabFromMetadata(source.metadata))
  const meta = source.metadata as { tokenizerConfig?: Record<string, unknown>, generationConfig?: Record<string, unknown>, dir?: string }
  const dir = typeof meta.dir === 'string' ? meta.dir : source.path
  const json = JSON.parse(await readFile(join(dir, 'tokenizer.json'), { encoding: 'utf8', signal: options.signal }))
  return new HfJsonTokenizer(json, meta.tokenizerConfig ?? {}, meta.generationConfig ?? {})
}
