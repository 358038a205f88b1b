/**
 * The embedded default model: a 4M-parameter Llama trained by this project on the King James Bible
 * (scripts/train-default-model/), shipped in the package as a Hugging Face directory and as an f16 GGUF file in the
 * same folder, so a first run needs no download.
 *
 * @example
 * ```ts
 * import { defaultModelPath, openModel } from '@swarm/kernels'
 * const source = await openModel(defaultModelPath())        // the GGUF file
 * const hf = await openModel(defaultModelPath('hf'))        // the Hugging Face directory
 * ```
 */
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** the folder holding the default model (config.json, model.safetensors, tokenizer files and the GGUF file) */
export const DEFAULT_MODEL_DIR: string = fileURLToPath(new URL('../default-model', import.meta.url))

/** file name of the default model's GGUF inside DEFAULT_MODEL_DIR */
export const DEFAULT_MODEL_GGUF_FILE = 'kjv-llama-4m-f16.gguf'

/** Path of the default model: the GGUF file (default) or the Hugging Face directory ('hf'). */
export function defaultModelPath (format: 'gguf' | 'hf' = 'gguf'): string {
  return format === 'hf' ? DEFAULT_MODEL_DIR : join(DEFAULT_MODEL_DIR, DEFAULT_MODEL_GGUF_FILE)
}
