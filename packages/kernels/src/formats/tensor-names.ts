/** Canonical (GGUF / llama.cpp) tensor names of a model, their shapes, and the Hugging Face names they map from. */
import type { ModelConfig, TensorInfo } from '../types.js'
import { CorruptModelFileError } from './errors.js'

export interface TensorShape {
  name: string
  /** torch order */
  shape: number[]
}

/** The tensors of one block, canonical names, in llama.cpp's order. */
export function blockTensorShapes (config: ModelConfig, block: number): TensorShape[] {
  const p = `blk.${block}.`
  const qDim = config.nHeads * config.headDim
  const kvDim = config.nKvHeads * config.headDim
  const out: TensorShape[] = [
    { name: p + 'attn_norm.weight', shape: [config.dim] },
    { name: p + 'attn_q.weight', shape: [qDim, config.dim] },
    { name: p + 'attn_k.weight', shape: [kvDim, config.dim] },
    { name: p + 'attn_v.weight', shape: [kvDim, config.dim] }
  ]
  if (config.qkvBias) {
    out.push({ name: p + 'attn_q.bias', shape: [qDim] }, { name: p + 'attn_k.bias', shape: [kvDim] }, { name: p + 'attn_v.bias', shape: [kvDim] })
  }
  out.push(
    { name: p + 'attn_output.weight', shape: [config.dim, qDim] },
    { name: p + 'ffn_norm.weight', shape: [config.dim] },
    { name: p + 'ffn_gate.weight', shape: [config.ffnDim, config.dim] },
    { name: p + 'ffn_up.weight', shape: [config.ffnDim, config.dim] },
    { name: p + 'ffn_down.weight', shape: [config.dim, config.ffnDim] }
  )
  return out
}

/** Every tensor a model of `config` has: token_embd, the blocks, output_norm, output (unless tied). */
export function modelTensorShapes (config: ModelConfig): TensorShape[] {
  const out: TensorShape[] = [{ name: 'token_embd.weight', shape: [config.vocabSize, config.dim] }]
  for (let b = 0; b < config.nLayers; b++) out.push(...blockTensorShapes(config, b))
  out.push({ name: 'output_norm.weight', shape: [config.dim] })
  if (!config.tiedEmbeddings) out.push({ name: 'output.weight', shape: [config.vocabSize, config.dim] })
  return out
}

/** Throws a one-line error naming the first tensor that is missing or has the wrong shape. */
export function checkModelTensors (config: ModelConfig, tensors: Map<string, TensorInfo>, what: string): void {
  for (const { name, shape } of modelTensorShapes(config)) {
    const info = tensors.get(name)
    if (info === undefined) throw new CorruptModelFileError(`${what}: missing tensor ${name}`)
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new CorruptModelFileError(`${what}: tensor ${name} has shape [${info.shape.join(', ')}], the config implies [${shape.join(', ')}]`)
    }
  }
}

const HF_LAYER_PARTS: Record<string, string> = {
  'input_layernorm.weight': 'attn_norm.weight',
  'self_attn.q_proj.weight': 'attn_q.weight',
  'self_attn.k_proj.weight': 'attn_k.weight',
  'self_attn.v_proj.weight': 'attn_v.weight',
  'self_attn.o_proj.weight': 'attn_output.weight',
  'self_attn.q_proj.bias': 'attn_q.bias',
  'self_attn.k_proj.bias': 'attn_k.bias',
  'self_attn.v_proj.bias': 'attn_v.bias',
  'self_attn.o_proj.bias': 'attn_output.bias',
  'post_attention_layernorm.weight': 'ffn_norm.weight',
  'mlp.gate_proj.weight': 'ffn_gate.weight',
  'mlp.up_proj.weight': 'ffn_up.weight',
  'mlp.down_proj.weight': 'ffn_down.weight'
}
const HF_GLOBAL: Record<string, string> = {
  'model.embed_tokens.weight': 'token_embd.weight',
  'model.norm.weight': 'output_norm.weight',
  'lm_head.weight': 'output.weight'
}
const CANONICAL_LAYER_PARTS = new Map(Object.entries(HF_LAYER_PARTS).map(([hf, c]) => [c, hf]))
const CANONICAL_GLOBAL = new Map(Object.entries(HF_GLOBAL).map(([hf, c]) => [c, hf]))

/** Canonical name of a Hugging Face Llama-family tensor name; undefined for names we do not know. */
export function canonicalNameOfHf (hfName: string): string | undefined {
  const global = HF_GLOBAL[hfName]
  if (global !== undefined) return global
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hfName)
  if (m === null) return undefined
  const part = HF_LAYER_PARTS[m[2]]
  return part === undefined ? undefined : `blk.${Number(m[1])}.${part}`
}

/** Hugging Face name of a canonical tensor name; throws for names with no HF counterpart. */
export function hfNameOfCanonical (name: string): string {
  const global = CANONICAL_GLOBAL.get(name)
  if (global !== undefined) return global
  const m = /^blk\.(\d+)\.(.+)$/.exec(name)
  const part = m === null ? undefined : CANONICAL_LAYER_PARTS.get(m[2])
  if (m === null || part === undefined) throw new Error(`tensor ${name} has no Hugging Face name`)
  return `model.layers.${m[1]}.${part}`
}

/** HF tensors that carry no weights we need (recomputed buffers of old checkpoints). */
export function isIgnorableHfTensor (hfName: string): boolean {
  return /\.rotary_emb\.inv_freq$/.test(hfName)
}

/**
 * llama.cpp's Q/K row permutation for llama/mistral GGUF files, per head of `headDim` rows:
 * dst_row = h*hd + 2j + p  <-  src_row = h*hd + p*hd/2 + j, so 'adjacent' RoPE pairs match HF's 'halves' pairs.
 * Works on any row-major data with `rowElements` values per row (1 for a bias).
 */
export function permuteQkRows (src: Float32Array, nHeads: number, headDim: number, rowElements: number): Float32Array {
  if (src.length !== nHeads * headDim * rowElements) {
    throw new Error(`cannot permute ${src.length} values as ${nHeads} heads x ${headDim} rows x ${rowElements}`)
  }
  const dst = new Float32Array(src.length)
  const half = headDim / 2
  for (let h = 0; h < nHeads; h++) {
    for (let j = 0; j < half; j++) {
      for (let p = 0; p < 2; p++) {
        const d = (h * headDim + 2 * j + p) * rowElements
        const s = (h * headDim + p * half + j) * rowElements
        dst.set(src.subarray(s, s + rowElements), d)
      }
    }
  }
  return dst
}

/** Inverse of permuteQkRows: GGUF (adjacent) row order back to Hugging Face (halves) order. */
export function unpermuteQkRows (src: Float32Array, nHeads: number, headDim: number, rowElements: number): Float32Array {
  if (src.length !== nHeads * headDim * rowElements) {
    throw new Error(`cannot unpermute ${src.length} values as ${nHeads} heads x ${headDim} rows x ${rowElements}`)
  }
  const dst = new Float32Array(src.length)
  const half = headDim / 2
  for (let h = 0; h < nHeads; h++) {
    for (let j = 0; j < half; j++) {
      for (let p = 0; p < 2; p++) {
        const d = (h * headDim + p * half + j) * rowElements
        const s = (h * headDim + 2 * j + p) * rowElements
        dst.set(src.subarray(s, s + rowElements), d)
      }
    }
  }
  return dst
}
