/**
 * The shared vocabulary of the kernels package: dtypes, tensors, model configs and the sources they come from.
 * Every loader produces these records, every op and model consumes them.
 */

/** Storage dtypes of weights. Weights stay in their stored dtype in memory; ops read them as they are. */
export type DType = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_K' | 'q6_K'

/**
 * A tensor as stored: raw bytes in `dtype`, logical shape outermost first (torch order, `[rows, cols]`).
 * For a GGUF tensor the shape is the GGUF dims reversed. Quantized dtypes pack each row in blocks along the
 * last (innermost) dimension.
 */
export interface Tensor {
  name: string
  dtype: DType
  shape: number[]
  /** exactly `byteLength(dtype, shape)` bytes; may be a view into a larger buffer */
  data: Uint8Array
  /**
   * How `data` is laid out when it is not row-major: 'col-tiles' (the wasm backend's copy of f32 and f16 weights with
   * more than COL_TILE columns): tile c holds columns [c * COL_TILE, (c + 1) * COL_TILE) of every row, row after row.
   */
  layout?: 'col-tiles'
}

/** columns per tile of the 'col-tiles' layout */
export const COL_TILE = 2048

/**
 * Where row r's part of the column tile that starts at column c0 (a multiple of COL_TILE) lies in a 'col-tiles'
 * tensor of [rows, cols]: its first element (counted in elements, not bytes) and its length
 */
export function colTileSlice (rows: number, cols: number, r: number, c0: number): { offset: number, length: number } {
  const length = Math.min(COL_TILE, cols - c0)
  // the tiles before hold columns [0, c0) of every row
  return { offset: rows * c0 + r * length, length }
}

/** Architectures we run. New ones land CPU-first in `models/`. */
export type Architecture = 'llama' | 'mistral' | 'qwen2'

/**
 * How RoPE pairs dimensions inside a head.
 * - 'adjacent': pairs (2j, 2j+1) - llama.cpp's NORM mode, used by GGUF llama/mistral whose Q/K rows were permuted
 * - 'halves': pairs (j, j + headDim/2) - Hugging Face rotate_half / llama.cpp NEOX mode (HF checkpoints, GGUF qwen2)
 */
export type RopeStyle = 'adjacent' | 'halves'

export type RopeScaling =
  | { type: 'linear', factor: number }
  | { type: 'llama3', factor: number, lowFreqFactor: number, highFreqFactor: number, originalContextLength: number }

export interface ModelConfig {
  architecture: Architecture
  /** human-readable name from the file, if any */
  name?: string
  /** number of transformer blocks */
  nLayers: number
  /** hidden size (model dim) */
  dim: number
  nHeads: number
  /** key/value heads (GQA); equals nHeads without GQA */
  nKvHeads: number
  /** per-head dimension, usually dim / nHeads */
  headDim: number
  /** FFN intermediate size */
  ffnDim: number
  vocabSize: number
  /** maximum positions the model was trained for */
  contextLength: number
  rmsNormEps: number
  ropeTheta: number
  ropeStyle: RopeStyle
  ropeScaling?: RopeScaling
  /** LM head shares the token embedding matrix */
  tiedEmbeddings: boolean
  /** q/k/v projections carry a bias (qwen2) */
  qkvBias: boolean
}

/**
 * Canonical tensor names are GGUF's (llama.cpp's) names:
 *   token_embd.weight, output_norm.weight, output.weight,
 *   blk.N.attn_norm.weight, blk.N.attn_q.weight, blk.N.attn_k.weight, blk.N.attn_v.weight,
 *   blk.N.attn_q.bias, blk.N.attn_k.bias, blk.N.attn_v.bias, blk.N.attn_output.weight,
 *   blk.N.ffn_norm.weight, blk.N.ffn_gate.weight, blk.N.ffn_up.weight, blk.N.ffn_down.weight
 * Loaders of other layouts (Hugging Face) map their names onto these.
 */
export interface TensorInfo {
  name: string
  dtype: DType
  shape: number[]
  byteLength: number
}

/** Special tokens and chat template, as declared by the model files. */
export interface TokenizerSpecials {
  bosTokenId?: number
  eosTokenId?: number
  /** extra end-of-generation ids (e.g. Llama 3's <|eot_id|>) */
  eosTokenIds: number[]
  padTokenId?: number
  addBos: boolean
  addEos: boolean
  chatTemplate?: string
}

export interface GenerationDefaults {
  temperature?: number
  topK?: number
  topP?: number
  repetitionPenalty?: number
  maxNewTokens?: number
}

export type ModelFormat = 'gguf' | 'hf'

/**
 * An opened model on disk. Opening reads headers only; `loadTensor` reads exactly one tensor's bytes from disk,
 * so a caller that needs blocks [a, b) never touches the rest of the file.
 */
export interface ModelSource {
  format: ModelFormat
  /** the path given to open it (GGUF file or HF directory) */
  path: string
  config: ModelConfig
  specials: TokenizerSpecials
  generation: GenerationDefaults
  /** every tensor, by canonical name */
  tensors: Map<string, TensorInfo>
  /** read one tensor, in its stored dtype */
  loadTensor: (name: string, options?: { signal?: AbortSignal }) => Promise<Tensor>
  /** raw format metadata: GGUF key/values, or HF config.json merged with tokenizer_config.json */
  metadata: Record<string, unknown>
  close: () => Promise<void>
}

/** Value types of GGUF metadata (the writer needs them explicit; the reader returns plain JS values). */
export type GgufScalarType = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'u64' | 'i64' | 'f32' | 'f64' | 'bool' | 'string'

/** One metadata key/value for the GGUF writer. 64-bit integers are bigint. */
export type GgufEntry =
  | { key: string, type: GgufScalarType, value: number | bigint | boolean | string }
  | { key: string, type: 'array', itemType: GgufScalarType, value: ArrayLike<number | bigint | boolean | string> }

/**
 * A tokenizer vocabulary as GGUF stores it (`tokenizer.ggml.*`). `model` 'llama' is SentencePiece-style
 * (scores decide merges, <0xNN> byte fallback), 'gpt2' is byte-level BPE (merges decide, `pre` names the
 * pre-tokenizer regex set as llama.cpp does: 'default', 'llama-bpe', 'qwen2', 'smollm', ...).
 */
export interface GgufVocab {
  model: 'llama' | 'gpt2'
  pre?: string
  tokens: string[]
  /** SentencePiece scores (llama) */
  scores?: number[]
  /** llama.cpp token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte */
  tokenTypes: number[]
  /** BPE merges "a b" (gpt2) */
  merges?: string[]
  bosTokenId?: number
  eosTokenId?: number
  eotTokenId?: number
  unknownTokenId?: number
  paddingTokenId?: number
  addBos: boolean
  addEos: boolean
  /** SentencePiece: prepend a space before encoding (llama default true) */
  addSpacePrefix?: boolean
  chatTemplate?: string
}
