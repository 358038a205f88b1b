/** Loads the tensors a block range or the model head needs, checking every shape against the config. */
import { dequantize } from '../quant/index.js'
import type { Ops } from '../backend-types.js'
import type { ModelConfig, ModelSource, Tensor } from '../types.js'
import type { BlockWeights } from './llama.js'

type Options = { signal?: AbortSignal }

async function load (source: ModelSource, name: string, shape: number[], options: Options): Promise<Tensor> {
  const info = source.tensors.get(name)
  if (info === undefined) throw new Error(`model has no tensor ${name}`)
  if (info.shape.length !== shape.length || info.shape.some((n, i) => n !== shape[i])) {
    throw new Error(`tensor ${name} has shape [${info.shape.join(', ')}], expected [${shape.join(', ')}]`)
  }
  return await source.loadTensor(name, options)
}

/** small vectors (norms, biases) are used as f32 whatever their stored dtype */
async function loadVector (source: ModelSource, name: string, n: number, options: Options): Promise<Float32Array> {
  return dequantize(await load(source, name, [n], options))
}

export async function loadBlockWeights (source: ModelSource, block: number, options: Options = {}): Promise<BlockWeights> {
  const c = source.config
  const p = `blk.${block}.`
  const qDim = c.nHeads * c.headDim
  const kvDim = c.nKvHeads * c.headDim
  const w: BlockWeights = {
    attnNorm: await loadVector(source, p + 'attn_norm.weight', c.dim, options),
    wq: await load(source, p + 'attn_q.weight', [qDim, c.dim], options),
    wk: await load(source, p + 'attn_k.weight', [kvDim, c.dim], options),
    wv: await load(source, p + 'attn_v.weight', [kvDim, c.dim], options),
    wo: await load(source, p + 'attn_output.weight', [c.dim, qDim], options),
    ffnNorm: await loadVector(source, p + 'ffn_norm.weight', c.dim, options),
    wGate: await load(source, p + 'ffn_gate.weight', [c.ffnDim, c.dim], options),
    wUp: await load(source, p + 'ffn_up.weight', [c.ffnDim, c.dim], options),
    wDown: await load(source, p + 'ffn_down.weight', [c.dim, c.ffnDim], options)
  }
  if (c.qkvBias) {
    w.bq = await loadVector(source, p + 'attn_q.bias', qDim, options)
    w.bk = await loadVector(source, p + 'attn_k.bias', kvDim, options)
    w.bv = await loadVector(source, p + 'attn_v.bias', kvDim, options)
  }
  return w
}

export interface HeadWeights {
  tokenEmbedding: Tensor // [vocab, dim]
  outputNorm: Float32Array // [dim]
  output: Tensor // [vocab, dim] (the embedding itself when tied)
}

export async function loadHeadWeights (source: ModelSource, options: Options = {}): Promise<HeadWeights> {
  const c: ModelConfig = source.config
  const tokenEmbedding = await load(source, 'token_embd.weight', [c.vocabSize, c.dim], options)
  const outputNorm = await loadVector(source, 'output_norm.weight', c.dim, options)
  const output = c.tiedEmbeddings ? tokenEmbedding : await load(source, 'output.weight', [c.vocabSize, c.dim], options)
  return { tokenEmbedding, outputNorm, output }
}

/** GGUF Llama 3 files carry their RoPE frequency factors as a tensor */
export async function loadRopeFreqFactors (source: ModelSource, options: Options = {}): Promise<Float32Array | undefined> {
  const info = source.tensors.get('rope_freqs.weight')
  if (info === undefined) return undefined
  return await loadVector(source, 'rope_freqs.weight', source.config.headDim / 2, options)
}

/** hands each matmul weight to the backend that will multiply by it (e.g. copied once into wasm memory) */
export function prepareBlockWeights (ops: Ops, w: BlockWeights): BlockWeights {
  const prepare = ops.prepareWeight
  if (prepare === undefined) return w
  return {
    ...w,
    wq: prepare(w.wq),
    wk: prepare(w.wk),
    wv: prepare(w.wv),
    wo: prepare(w.wo),
    wGate: prepare(w.wGate),
    wUp: prepare(w.wUp),
    wDown: prepare(w.wDown)
  }
}

/** the LM head goes to the backend; the embedding table stays where it is (rows are read one by one), unless tied */
export function prepareHeadWeights (ops: Ops, w: HeadWeights): HeadWeights {
  if (ops.prepareWeight === undefined) return w
  const output = ops.prepareWeight(w.output)
  return { ...w, output, tokenEmbedding: w.output === w.tokenEmbedding ? output : w.tokenEmbedding }
}
