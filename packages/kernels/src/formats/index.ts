/**
 * Model formats: GGUF (reader, writer, config), safetensors (reader, writer), Hugging Face directories, and
 * `openModel` which opens either by what the path is. Opening reads headers only; `loadTensor` reads one tensor.
 *
 * @example
 * ```ts
 * const source = await openModel('tiny.gguf')            // or a Hugging Face directory
 * source.config.nLayers                                     // from the GGUF metadata / config.json
 * const wq = await source.loadTensor('blk.0.attn_q.weight') // exactly that tensor's bytes, in its stored dtype
 * await source.close()
 * ```
 */
export { CorruptModelFileError, UnsupportedModelError, UnknownTensorError, ModelNotFoundError } from './errors.js'
export type { ReadStats, TensorToWrite } from './io.js'
export { readGgufHeader, readGgufHeaderFrom, GGUF_MAGIC, GGUF_DEFAULT_ALIGNMENT, GGUF_VALUE_TYPE } from './gguf.js'
export type { GgufHeader, GgufTensorInfo } from './gguf.js'
export { modelConfigFromGguf, specialsFromGguf, generationDefaultsFromGguf, ggufGenerationMetadata, GGUF_ARCHITECTURES } from './gguf-config.js'
export { writeGguf, encodeGgufHeader } from './gguf-writer.js'
export type { WriteGgufOptions } from './gguf-writer.js'
export {
  readSafetensorsHeader, readSafetensorsHeaderFrom, readSafetensorsTensor, writeSafetensors, encodeSafetensorsHeader
} from './safetensors.js'
export type { SafetensorsHeader, SafetensorsTensorInfo } from './safetensors.js'
export { modelConfigFromHf, generationDefaultsFromHf, openHfModel } from './hf.js'
export type { HfModelSource } from './hf.js'
export { openModel, openGgufModel } from './open-model.js'
export type { GgufModelSource } from './open-model.js'
export {
  modelTensorShapes, blockTensorShapes, checkModelTensors, canonicalNameOfHf, hfNameOfCanonical, permuteQkRows, unpermuteQkRows
} from './tensor-names.js'
export type { TensorShape } from './tensor-names.js'
export { weightsManifest } from './manifest.js'
export type { ManifestEntry } from './manifest.js'
