// TEST-ONLY: a minimal, standalone writer of tiny all-F32 Llama GGUF v3 files with a 'llama' (SentencePiece) vocab.
// It exists so the llama.cpp oracle can check itself without depending on the real GGUF writer in
// packages/kernels/src/formats. Do not use it for anything else; it writes random weights from a seeded PRNG.
import { closeSync, openSync, writeSync } from 'node:fs'

export interface TinyLlamaOptions {
  dim?: number
  layers?: number
  heads?: number
  kvHeads?: number
  ffn?: number
  contextLength?: number
  seed?: number
  /** Pad the vocabulary with '<extra_N>' pieces up to this size (e.g. 32000 for TinyLlama-shaped speed tests). */
  vocabSize?: number
  /** Return the written weights (default true; pass false for big files, which are streamed to disk). */
  returnTensors?: boolean
}

// GGUF metadata value types
const U32 = 4
const I32 = 5
const F32 = 6
const STR = 8
const ARR = 9

type Kv = [key: string, type: number, value: number | string | { type: number; values: (number | string)[] }]

/** The vocabulary: <unk>, <s>, </s>, 256 byte tokens <0xNN> (type 6), then some SentencePiece pieces. */
export function tinyVocab(padTo = 0): { tokens: string[]; scores: number[]; types: number[] } {
  const tokens = ['<unk>', '<s>', '</s>']
  const types = [2, 3, 3]
  const scores = [0, 0, 0]
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)
    types.push(6)
    scores.push(0)
  }
  const pieces = [
    '▁', 'e', 't', 'a', 'o', 'i', 'n', 's', 'h', 'r', 'd', 'l', 'u', 'c', 'm', 'w', 'f', 'g', 'y', 'p', 'b',
    'he', 'in', 'er', 'an', 'on', '▁t', '▁a', '▁th', '▁the', '▁w', '▁s', '▁o', 'ing', '▁in', '▁and', 'll',
    '▁hello', '▁world', 'hel', 'lo', '▁he', 'wor', 'ld', '.', ','
  ]
  pieces.forEach((p, i) => {
    tokens.push(p)
    types.push(1)
    scores.push(-i) // earlier pieces merge first
  })
  for (let i = 0; tokens.length < padTo; i++) {
    tokens.push(`<extra_${i}>`)
    types.push(1)
    scores.push(-1000 - i)
  }
  return { tokens, scores, types }
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

class Buf {
  chunks: Buffer[] = []
  length = 0
  push(b: Buffer): void {
    this.chunks.push(b)
    this.length += b.length
  }
  u32(v: number): void {
    const b = Buffer.alloc(4)
    b.writeUInt32LE(v)
    this.push(b)
  }
  i32(v: number): void {
    const b = Buffer.alloc(4)
    b.writeInt32LE(v)
    this.push(b)
  }
  u64(v: number): void {
    const b = Buffer.alloc(8)
    b.writeBigUInt64LE(BigInt(v))
    this.push(b)
  }
  f32(v: number): void {
    const b = Buffer.alloc(4)
    b.writeFloatLE(v)
    this.push(b)
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8')
    this.u64(b.length)
    this.push(b)
  }
  value(type: number, v: number | string): void {
    if (type === U32) this.u32(v as number)
    else if (type === I32) this.i32(v as number)
    else if (type === F32) this.f32(v as number)
    else if (type === STR) this.str(v as string)
    else throw new Error(`tiny-gguf: unsupported type ${type}`)
  }
}

/** Writes a tiny random F32 Llama GGUF to `path`. Defaults: dim 64, 2 layers, 4 heads, 2 kv heads, ffn 128. */
export function writeTinyLlamaGguf(
  path: string,
  opts: TinyLlamaOptions = {}
): { vocabSize: number; tensors: Map<string, Float32Array> } {
  const dim = opts.dim ?? 64
  const layers = opts.layers ?? 2
  const heads = opts.heads ?? 4
  const kvHeads = opts.kvHeads ?? 2
  const ffn = opts.ffn ?? 128
  const ctx = opts.contextLength ?? 256
  const rand = mulberry32(opts.seed ?? 1234)
  const vocab = tinyVocab(opts.vocabSize ?? 0)
  const nVocab = vocab.tokens.length
  const kvDim = (dim / heads) * kvHeads

  const kvs: Kv[] = [
    ['general.architecture', STR, 'llama'],
    ['general.name', STR, 'tiny-oracle-selfcheck'],
    ['general.file_type', U32, 0],
    ['llama.context_length', U32, ctx],
    ['llama.embedding_length', U32, dim],
    ['llama.block_count', U32, layers],
    ['llama.feed_forward_length', U32, ffn],
    ['llama.attention.head_count', U32, heads],
    ['llama.attention.head_count_kv', U32, kvHeads],
    ['llama.attention.layer_norm_rms_epsilon', F32, 1e-5],
    ['llama.rope.freq_base', F32, 10000],
    ['llama.rope.dimension_count', U32, dim / heads],
    ['tokenizer.ggml.model', STR, 'llama'],
    ['tokenizer.ggml.tokens', ARR, { type: STR, values: vocab.tokens }],
    ['tokenizer.ggml.scores', ARR, { type: F32, values: vocab.scores }],
    ['tokenizer.ggml.token_type', ARR, { type: I32, values: vocab.types }],
    ['tokenizer.ggml.unknown_token_id', U32, 0],
    ['tokenizer.ggml.bos_token_id', U32, 1],
    ['tokenizer.ggml.eos_token_id', U32, 2]
  ]

  // tensors: name, GGUF dims (ne0 first = torch shape reversed), init scale (undefined = RMSNorm weight ~1)
  const tensors: { name: string; ne: number[]; scale?: number }[] = [
    { name: 'token_embd.weight', ne: [dim, nVocab], scale: 1 },
    { name: 'output_norm.weight', ne: [dim] },
    { name: 'output.weight', ne: [dim, nVocab], scale: 1 / Math.sqrt(dim) }
  ]
  for (let l = 0; l < layers; l++) {
    const p = `blk.${l}.`
    tensors.push(
      { name: p + 'attn_norm.weight', ne: [dim] },
      { name: p + 'attn_q.weight', ne: [dim, dim], scale: 1 / Math.sqrt(dim) },
      { name: p + 'attn_k.weight', ne: [dim, kvDim], scale: 1 / Math.sqrt(dim) },
      { name: p + 'attn_v.weight', ne: [dim, kvDim], scale: 1 / Math.sqrt(dim) },
      { name: p + 'attn_output.weight', ne: [dim, dim], scale: 1 / Math.sqrt(dim) },
      { name: p + 'ffn_norm.weight', ne: [dim] },
      { name: p + 'ffn_gate.weight', ne: [dim, ffn], scale: 1 / Math.sqrt(dim) },
      { name: p + 'ffn_up.weight', ne: [dim, ffn], scale: 1 / Math.sqrt(dim) },
      { name: p + 'ffn_down.weight', ne: [ffn, dim], scale: 1 / Math.sqrt(ffn) }
    )
  }

  const ALIGN = 32
  const head = new Buf()
  head.u32(0x46554747) // "GGUF"
  head.u32(3)
  head.u64(tensors.length)
  head.u64(kvs.length)
  for (const [key, type, value] of kvs) {
    head.str(key)
    head.u32(type)
    if (type === ARR) {
      const arr = value as { type: number; values: (number | string)[] }
      head.u32(arr.type)
      head.u64(arr.values.length)
      for (const v of arr.values) head.value(arr.type, v)
    } else head.value(type, value as number | string)
  }
  const written = new Map<string, Float32Array>()
  let offset = 0
  for (const t of tensors) {
    const bytes = t.ne.reduce((a, b) => a * b, 1) * 4
    head.str(t.name)
    head.u32(t.ne.length)
    for (const d of t.ne) head.u64(d)
    head.u32(0) // GGML_TYPE_F32
    head.u64(offset)
    offset += Math.ceil(bytes / ALIGN) * ALIGN
  }
  const fd = openSync(path, 'w')
  try {
    writeSync(fd, Buffer.concat([...head.chunks, Buffer.alloc((ALIGN - (head.length % ALIGN)) % ALIGN)]))
    for (const t of tensors) {
      const n = t.ne.reduce((a, b) => a * b, 1)
      const f = new Float32Array(n)
      for (let i = 0; i < n; i++) {
        const u = rand() * 2 - 1 // uniform [-1, 1): std 1/sqrt(3)
        f[i] = t.scale === undefined ? 1 + 0.1 * u : u * t.scale * Math.sqrt(3)
      }
      if (opts.returnTensors !== false) written.set(t.name, f)
      writeSync(fd, new Uint8Array(f.buffer, f.byteOffset, f.byteLength))
      const pad = (ALIGN - (f.byteLength % ALIGN)) % ALIGN
      if (pad) writeSync(fd, Buffer.alloc(pad))
    }
  } finally {
    closeSync(fd)
  }
  return { vocabSize: nVocab, tensors: written }
}
