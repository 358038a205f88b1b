/** ModelConfig and TokenizerSpecials from GGUF metadata, following llama.cpp's key names and defaults. */
import type { Architecture, GenerationDefaults, GgufEntry, ModelConfig, RopeScaling, TensorInfo, TokenizerSpecials } from '../types.js'
import { bpePreTokenizer } from '../tokenizer/pretokenize.js'
import { CorruptModelFileError, UnsupportedModelError } from './errors.js'

export const GGUF_ARCHITECTURES: readonly Architecture[] = ['llama', 'mistral', 'qwen2']
export const DEFAULT_ROPE_THETA = 10000

type TensorsArg = Map<string, TensorInfo> | readonly TensorInfo[]

function tensorMap (tensors: TensorsArg): Map<string, TensorInfo> {
  return tensors instanceof Map ? tensors : new Map(tensors.map((t) => [t.name, t]))
}

function toNumber (key: string, value: unknown): number | undefined {
  if (value === undefined) return undefined
  if (typeof value === 'number') return value
  if (typeof value === 'bigint') return Number(value)
  if (Array.isArray(value) && value.length > 0) {
    // per-layer arrays (e.g. head_count_kv); we run uniform layers only
    const first = toNumber(key, value[0])
    if (value.every((v) => toNumber(key, v) === first)) return first
    throw new UnsupportedModelError(`GGUF ${key} varies per layer (${value.slice(0, 8).map(String).join(', ')}...), not supported`)
  }
  throw new CorruptModelFileError(`corrupt GGUF: ${key} is ${typeof value}, expected a number`)
}

/**
 * The model config of a GGUF file from its metadata and tensor infos (vocab size from token_embd rows, tied
 * embeddings when there is no output.weight, qkv bias when blk.0.attn_q.bias exists). RoPE: 'adjacent' for
 * llama/mistral (their Q/K rows were permuted by the converter), 'halves' for qwen2 (llama.cpp NEOX). Llama 3
 * files carry their RoPE scaling as a `rope_freqs.weight` tensor, not metadata; `ropeScaling` is set only from
 * metadata (`rope.scaling.type` linear).
 */
export function modelConfigFromGguf (metadata: Record<string, unknown>, tensors: TensorsArg): ModelConfig {
  const byName = tensorMap(tensors)
  const arch = metadata['general.architecture']
  if (typeof arch !== 'string') throw new CorruptModelFileError('corrupt GGUF: metadata has no general.architecture string')
  if (!(GGUF_ARCHITECTURES as readonly string[]).includes(arch)) {
    throw new UnsupportedModelError(`unsupported GGUF architecture '${arch}' (supported: ${GGUF_ARCHITECTURES.join(', ')})`)
  }
  const architecture = arch as Architecture
  const num = (suffix: string): number | undefined => toNumber(`${arch}.${suffix}`, metadata[`${arch}.${suffix}`])
  const required = (suffix: string): number => {
    const v = num(suffix)
    if (v === undefined) throw new CorruptModelFileError(`corrupt GGUF: metadata has no ${arch}.${suffix}`)
    if (!Number.isInteger(v) || v <= 0) throw new CorruptModelFileError(`corrupt GGUF: ${arch}.${suffix} is ${v}, expected a positive integer`)
    return v
  }
  const nLayers = required('block_count')
  const dim = required('embedding_length')
  const nHeads = required('attention.head_count')
  const nKvHeads = num('attention.head_count_kv') ?? nHeads
  const ffnDim = required('feed_forward_length')
  const contextLength = required('context_length')
  if (!Number.isInteger(nKvHeads) || nKvHeads <= 0 || nHeads % nKvHeads !== 0) {
    throw new CorruptModelFileError(`corrupt GGUF: ${nHeads} heads are not a multiple of ${nKvHeads} kv heads`)
  }
  const headDim = num('attention.key_length') ?? dim / nHeads
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new CorruptModelFileError(`corrupt GGUF: head dim ${headDim} (dim ${dim} / ${nHeads} heads) is not an even integer`)
  }
  const valueLength = num('attention.value_length')
  if (valueLength !== undefined && valueLength !== headDim) {
    throw new UnsupportedModelError(`GGUF ${arch}.attention.value_length ${valueLength} differs from key length ${headDim}, not supported`)
  }
  const ropeDims = num('rope.dimension_count')
  if (ropeDims !== undefined && ropeDims !== headDim) {
    throw new UnsupportedModelError(`GGUF ${arch}.rope.dimension_count ${ropeDims} is not the head dim ${headDim} (partial RoPE is not supported)`)
  }
  const rmsNormEps = num('attention.layer_norm_rms_epsilon')
  if (rmsNormEps === undefined) throw new CorruptModelFileError(`corrupt GGUF: metadata has no ${arch}.attention.layer_norm_rms_epsilon`)
  const ropeTheta = num('rope.freq_base') ?? DEFAULT_ROPE_THETA

  let ropeScaling: RopeScaling | undefined
  const scalingType = metadata[`${arch}.rope.scaling.type`]
  const scalingFactor = num('rope.scaling.factor')
  if (scalingType === 'linear') {
    if (scalingFactor === undefined || !(scalingFactor > 0)) {
      throw new CorruptModelFileError(`corrupt GGUF: linear RoPE scaling without a positive ${arch}.rope.scaling.factor`)
    }
    if (scalingFactor !== 1) ropeScaling = { type: 'linear', factor: scalingFactor }
  } else if (scalingType !== undefined && scalingType !== 'none') {
    throw new UnsupportedModelError(`unsupported GGUF RoPE scaling type '${String(scalingType)}' (supported: none, linear)`)
  } else if (scalingType === undefined && scalingFactor !== undefined && scalingFactor !== 1) {
    // older converters wrote only rope.scale_linear / rope.scaling.factor
    ropeScaling = { type: 'linear', factor: scalingFactor }
  }
  const scaleLinear = num('rope.scale_linear')
  if (ropeScaling === undefined && scaleLinear !== undefined && scaleLinear !== 1) ropeScaling = { type: 'linear', factor: scaleLinear }

  const embd = byName.get('token_embd.weight')
  if (embd === undefined) throw new CorruptModelFileError('corrupt GGUF: no token_embd.weight tensor')
  if (embd.shape.length !== 2 || embd.shape[1] !== dim) {
    throw new CorruptModelFileError(`corrupt GGUF: token_embd.weight has shape [${embd.shape.join(', ')}], expected [vocab, ${dim}]`)
  }
  const name = metadata['general.name']
  return {
    architecture,
    ...(typeof name === 'string' ? { name } : {}),
    nLayers,
    dim,
    nHeads,
    nKvHeads,
    headDim,
    ffnDim,
    vocabSize: embd.shape[0],
    contextLength,
    rmsNormEps,
    ropeTheta,
    ropeStyle: architecture === 'qwen2' ? 'halves' : 'adjacent',
    ...(ropeScaling !== undefined ? { ropeScaling } : {}),
    tiedEmbeddings: !byName.has('output.weight'),
    qkvBias: byName.has('blk.0.attn_q.bias')
  }
}

/**
 * Special tokens from `tokenizer.ggml.*`: bos, eos, eot (an extra end-of-generation id), padding, add_bos_token
 * (llama.cpp's default: true for 'llama' vocabularies and Llama 3 style BPE pre-tokenizers, false otherwise),
 * add_eos_token (default false) and tokenizer.chat_template.
 */
export function specialsFromGguf (metadata: Record<string, unknown>): TokenizerSpecials {
  const id = (key: string): number | undefined => {
    const v = metadata[key]
    return typeof v === 'number' || typeof v === 'bigint' ? Number(v) : undefined
  }
  const bool = (key: string): boolean | undefined => typeof metadata[key] === 'boolean' ? metadata[key] as boolean : undefined
  const model = metadata['tokenizer.ggml.model']
  let addBosDefault = model === 'llama'
  if (model === 'gpt2') {
    const pre = metadata['tokenizer.ggml.pre']
    try {
      addBosDefault = bpePreTokenizer(typeof pre === 'string' ? pre : undefined).addBosDefault
    } catch {
      addBosDefault = false
    }
  }
  const bosTokenId = id('tokenizer.ggml.bos_token_id')
  const eosTokenId = id('tokenizer.ggml.eos_token_id')
  const eotTokenId = id('tokenizer.ggml.eot_token_id')
  const eosTokenIds = [...new Set([eosTokenId, eotTokenId].filter((v): v is number => v !== undefined))].sort((a, b) => a - b)
  const chatTemplate = metadata['tokenizer.chat_template']
  const padTokenId = id('tokenizer.ggml.padding_token_id')
  return {
    ...(bosTokenId !== undefined ? { bosTokenId } : {}),
    ...(eosTokenId !== undefined ? { eosTokenId } : {}),
    eosTokenIds,
    ...(padTokenId !== undefined ? { padTokenId } : {}),
    addBos: bool('tokenizer.ggml.add_bos_token') ?? addBosDefault,
    addEos: bool('tokenizer.ggml.add_eos_token') ?? false,
    ...(typeof chatTemplate === 'string' ? { chatTemplate } : {})
  }
}

/** llama.cpp's sampling-default keys (gguf-py `Keys.General.SAMPLING_*`), by our GenerationDefaults field */
const SAMPLING_KEYS = {
  temperature: 'general.sampling.temp',
  topK: 'general.sampling.top_k',
  topP: 'general.sampling.top_p',
  repetitionPenalty: 'general.sampling.penalty_repeat'
} as const

/** The model author's sampling defaults from `general.sampling.*` (keys that are absent or not finite numbers stay undefined). */
export function generationDefaultsFromGguf (metadata: Record<string, unknown>): GenerationDefaults {
  const out: GenerationDefaults = {}
  for (const [field, key] of Object.entries(SAMPLING_KEYS) as Array<[keyof typeof SAMPLING_KEYS, string]>) {
    const raw = metadata[key]
    const value = typeof raw === 'bigint' ? Number(raw) : raw
    if (typeof value === 'number' && Number.isFinite(value)) out[field] = value
  }
  return out
}

/** GGUF entries for sampling defaults, as llama.cpp's converter writes them (temp/top_p/penalty f32, top_k i32). */
export function ggufGenerationMetadata (generation: GenerationDefaults): GgufEntry[] {
  const entries: GgufEntry[] = []
  if (generation.temperature !== undefined) entries.push({ key: SAMPLING_KEYS.temperature, type: 'f32', value: generation.temperature })
  if (generation.topK !== undefined) entries.push({ key: SAMPLING_KEYS.topK, type: 'i32', value: generation.topK })
  if (generation.topP !== undefined) entries.push({ key: SAMPLING_KEYS.topP, type: 'f32', value: generation.topP })
  if (generation.repetitionPenalty !== undefined) entries.push({ key: SAMPLING_KEYS.repetitionPenalty, type: 'f32', value: generation.repetitionPenalty })
  return entries
}
