/**
 * Hugging Face model directories: config.json, model.safetensors or sharded model.safetensors.index.json,
 * generation_config.json, tokenizer_config.json and tokenizer.json. Tensor names are mapped onto the canonical
 * GGUF names; weights stay unpermuted, so RoPE is 'halves' (rotate_half) for every HF model.
 */
import { open, readFile } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { specialsFromHfConfig } from '../tokenizer/hf-tokenizer.js'
import type { Architecture, GenerationDefaults, ModelConfig, ModelSource, RopeScaling, Tensor, TensorInfo, TokenizerSpecials } from '../types.js'
import { CorruptModelFileError, UnknownTensorError, UnsupportedModelError } from './errors.js'
import type { ReadStats } from './io.js'
import { readSafetensorsHeaderFrom, readSafetensorsTensor } from './safetensors.js'
import type { SafetensorsTensorInfo } from './safetensors.js'
import { canonicalNameOfHf, checkModelTensors, isIgnorableHfTensor } from './tensor-names.js'

type Json = Record<string, unknown>

const HF_ARCHITECTURES: Record<string, Architecture> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2'
}
const HF_MODEL_TYPES: Record<string, Architecture> = { llama: 'llama', mistral: 'mistral', qwen2: 'qwen2' }

const bad = (message: string): CorruptModelFileError => new CorruptModelFileError(`bad config.json: ${message}`)

function int (config: Json, key: string, fallback?: number): number {
  const v = config[key] ?? fallback
  if (v === undefined || v === null) throw bad(`missing ${key}`)
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw bad(`${key} is ${JSON.stringify(v)}, expected a positive integer`)
  return v
}

function positive (config: Json, key: string, fallback?: number): number {
  const v = config[key] ?? fallback
  if (v === undefined || v === null) throw bad(`missing ${key}`)
  if (typeof v !== 'number' || !(v > 0)) throw bad(`${key} is ${JSON.stringify(v)}, expected a positive number`)
  return v
}

function ropeScalingOf (raw: unknown): RopeScaling | undefined {
  if (raw === undefined || raw === null) return undefined
  if (typeof raw !== 'object' || Array.isArray(raw)) throw bad('rope_scaling is not an object')
  const s = raw as Json
  const type = s.rope_type ?? s.type
  if (type === 'default') return undefined
  if (type === 'linear') return { type: 'linear', factor: positive(s, 'factor') }
  if (type === 'llama3') {
    return {
      type: 'llama3',
      factor: positive(s, 'factor'),
      lowFreqFactor: positive(s, 'low_freq_factor'),
      highFreqFactor: positive(s, 'high_freq_factor'),
      originalContextLength: int(s, 'original_max_position_embeddings')
    }
  }
  throw new UnsupportedModelError(`unsupported rope_scaling type ${JSON.stringify(type)} (supported: linear, llama3)`)
}

/**
 * ModelConfig from a parsed config.json. `vocabSize` is config.vocab_size; `tiedEmbeddings` is
 * tie_word_embeddings (default false for llama/mistral as in transformers, qwen2 follows its config).
 */
export function modelConfigFromHf (config: Json): ModelConfig {
  const archs = config.architectures
  let architecture: Architecture | undefined
  if (Array.isArray(archs) && archs.length > 0) {
    architecture = HF_ARCHITECTURES[String(archs[0])]
    if (architecture === undefined) {
      throw new UnsupportedModelError(`unsupported architecture ${String(archs[0])} (supported: ${Object.keys(HF_ARCHITECTURES).join(', ')})`)
    }
  } else {
    architecture = HF_MODEL_TYPES[String(config.model_type)]
    if (architecture === undefined) {
      throw new UnsupportedModelError(`unsupported model_type ${JSON.stringify(config.model_type)} (supported: ${Object.keys(HF_MODEL_TYPES).join(', ')})`)
    }
  }
  const dim = int(config, 'hidden_size')
  const nHeads = int(config, 'num_attention_heads')
  const nKvHeads = int(config, 'num_key_value_heads', nHeads)
  if (nHeads % nKvHeads !== 0) throw bad(`num_attention_heads ${nHeads} is not a multiple of num_key_value_heads ${nKvHeads}`)
  const headDim = int(config, 'head_dim', dim / nHeads)
  if (headDim % 2 !== 0) throw bad(`head dim ${headDim} is odd`)
  const partial = config.partial_rotary_factor
  if (partial !== undefined && partial !== 1) throw new UnsupportedModelError(`partial_rotary_factor ${String(partial)} is not supported`)
  const attentionBias = config.attention_bias
  if (attentionBias !== undefined && typeof attentionBias !== 'boolean') throw bad('attention_bias is not a boolean')
  const tie = config.tie_word_embeddings ?? false
  if (typeof tie !== 'boolean') throw bad('tie_word_embeddings is not a boolean')
  const ropeScaling = ropeScalingOf(config.rope_scaling)
  return {
    architecture,
    ...(typeof config._name_or_path === 'string' && config._name_or_path !== '' ? { name: config._name_or_path } : {}),
    nLayers: int(config, 'num_hidden_layers'),
    dim,
    nHeads,
    nKvHeads,
    headDim,
    ffnDim: int(config, 'intermediate_size'),
    vocabSize: int(config, 'vocab_size'),
    contextLength: int(config, 'max_position_embeddings'),
    rmsNormEps: positive(config, 'rms_norm_eps'),
    ropeTheta: positive(config, 'rope_theta', 10000),
    ropeStyle: 'halves',
    ...(ropeScaling !== undefined ? { ropeScaling } : {}),
    tiedEmbeddings: tie,
    qkvBias: architecture === 'qwen2' ? true : attentionBias === true
  }
}

/** Sampling defaults from generation_config.json (missing keys stay undefined). */
export function generationDefaultsFromHf (generationConfig: Json): GenerationDefaults {
  const num = (key: string): number | undefined => typeof generationConfig[key] === 'number' ? generationConfig[key] as number : undefined
  const out: GenerationDefaults = {}
  const temperature = num('temperature')
  const topK = num('top_k')
  const topP = num('top_p')
  const repetitionPenalty = num('repetition_penalty')
  const maxNewTokens = num('max_new_tokens')
  if (temperature !== undefined) out.temperature = temperature
  if (topK !== undefined) out.topK = topK
  if (topP !== undefined) out.topP = topP
  if (repetitionPenalty !== undefined) out.repetitionPenalty = repetitionPenalty
  if (maxNewTokens !== undefined) out.maxNewTokens = maxNewTokens
  return out
}

async function readJson (path: string, signal: AbortSignal | undefined, required: boolean): Promise<Json | undefined> {
  let text: string
  try {
    text = await readFile(path, { encoding: 'utf8', signal })
  } catch (err) {
    if (!required && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new CorruptModelFileError(`missing ${path}`, { cause: err })
    throw err
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new CorruptModelFileError(`${path} is not valid JSON (${(err as Error).message})`, { cause: err })
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new CorruptModelFileError(`${path} is not a JSON object`)
  return json as Json
}

/** A Hugging Face model source with the read counters of its tensor loads. */
export interface HfModelSource extends ModelSource {
  format: 'hf'
  stats: ReadStats
}

/** Open a Hugging Face model directory: reads the JSON files and safetensors headers, no tensor data. */
export async function openHfModel (dir: string, options: { signal?: AbortSignal } = {}): Promise<HfModelSource> {
  const { signal } = options
  const config = (await readJson(join(dir, 'config.json'), signal, true)) as Json
  const generationConfig = (await readJson(join(dir, 'generation_config.json'), signal, false)) ?? {}
  const tokenizerConfig = (await readJson(join(dir, 'tokenizer_config.json'), signal, false)) ?? {}
  const tokenizerJson = (await readJson(join(dir, 'tokenizer.json'), signal, false)) ?? {}
  const modelConfig = modelConfigFromHf(config)

  // weight files: sharded index or a single model.safetensors
  const index = await readJson(join(dir, 'model.safetensors.index.json'), signal, false)
  let files: string[]
  if (index !== undefined) {
    const map = index.weight_map
    if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new CorruptModelFileError('model.safetensors.index.json has no weight_map object')
    files = [...new Set(Object.values(map as Json).map((f) => {
      if (typeof f !== 'string' || f.includes('/') || f.includes('\\') || f.startsWith('.')) {
        throw new CorruptModelFileError(`model.safetensors.index.json names a bad shard file ${JSON.stringify(f)}`)
      }
      return f
    }))].sort()
  } else {
    files = ['model.safetensors']
  }

  const handles: FileHandle[] = []
  const tensors = new Map<string, TensorInfo>()
  const locations = new Map<string, { handle: FileHandle, info: SafetensorsTensorInfo }>()
  try {
    for (const file of files) {
      const path = join(dir, file)
      let handle: FileHandle
      try {
        handle = await open(path, 'r')
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new CorruptModelFileError(`missing weights file ${path}`, { cause: err })
        throw err
      }
      handles.push(handle)
      const header = await readSafetensorsHeaderFrom(handle, path, { signal })
      for (const info of header.tensors) {
        if (isIgnorableHfTensor(info.name)) continue
        const name = canonicalNameOfHf(info.name)
        if (name === undefined) throw new UnsupportedModelError(`${path}: unexpected tensor ${info.name} for a ${modelConfig.architecture} model`)
        if (name.endsWith('attn_output.bias')) throw new UnsupportedModelError(`${path}: tensor ${info.name} (output projection bias) is not supported`)
        if (locations.has(name)) throw new CorruptModelFileError(`${path}: tensor ${info.name} appears in more than one file`)
        if (name === 'output.weight' && modelConfig.tiedEmbeddings) continue // transformers ties it to the embedding
        tensors.set(name, { name, dtype: info.dtype, shape: info.shape, byteLength: info.byteLength })
        locations.set(name, { handle, info: { ...info, name } })
      }
    }
    checkModelTensors(modelConfig, tensors, dir)
  } catch (err) {
    await Promise.all(handles.map(async (h) => await h.close()))
    throw err
  }

  const stats: ReadStats = { bytesRead: 0, reads: 0 }
  let closed = false
  const specials: TokenizerSpecials = specialsFromHfConfig(tokenizerJson, tokenizerConfig, generationConfig)
  return {
    format: 'hf',
    path: dir,
    config: modelConfig,
    specials,
    generation: generationDefaultsFromHf(generationConfig),
    tensors,
    metadata: { config, tokenizerConfig, generationConfig, dir },
    stats,
    loadTensor: async (name: string, opts: { signal?: AbortSignal } = {}): Promise<Tensor> => {
      if (closed) throw new Error(`model ${dir} is closed`)
      const loc = locations.get(name)
      if (loc === undefined) throw new UnknownTensorError(`model ${dir} has no tensor ${name}`)
      const data = await readSafetensorsTensor(loc.handle, loc.info, { signal: opts.signal, stats })
      return { name, dtype: loc.info.dtype, shape: [...loc.info.shape], data }
    },
    close: async () => {
      if (closed) return
      closed = true
      await Promise.all(handles.map(async (h) => await h.close()))
    }
  }
}
