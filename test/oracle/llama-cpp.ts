// llama.cpp as an oracle, through node-llama-cpp 3.22.1 (prebuilt CPU binary, llama.cpp commit de3ff815, tag "v0.5.0")
// and, for quantization, llama.cpp's own llama_model_quantize from the shipped libllama.so via koffi.
//
// Conventions (see /work/shared/notes/kernels.md):
// - logits and greedy runs use an F32 KV cache, flashAttention off, one thread unless told otherwise, a fresh
//   context per call (so positions start at 0 every time), and the model loaded with gpuLayers 0.
// - loaded models are cached per path (vocab-only and full separately); call disposeLlamaCpp() in afterAll.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { Llama, LlamaModel } from 'node-llama-cpp'

process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD ??= 'true'

let llamaPromise: Promise<Llama> | undefined
const vocabModels = new Map<string, Promise<LlamaModel>>()
const fullModels = new Map<string, Promise<LlamaModel>>()

/** The node-llama-cpp Llama instance: prebuilt CPU binary only, never builds or downloads. */
export function getOracleLlama(): Promise<Llama> {
  llamaPromise ??= (async () => {
    const { getLlama, LlamaLogLevel } = await import('node-llama-cpp')
    return getLlama({
      build: 'never',
      gpu: false,
      usePrebuiltBinaries: true,
      skipDownload: true,
      progressLogs: false,
      maxThreads: 0, // no cap: each context gets exactly the threads it asks for
      logLevel: LlamaLogLevel.error
    })
  })()
  return llamaPromise
}

function cached(map: Map<string, Promise<LlamaModel>>, path: string, vocabOnly: boolean): Promise<LlamaModel> {
  let p = map.get(path)
  if (!p) {
    p = getOracleLlama().then((llama) => llama.loadModel({ modelPath: path, vocabOnly, gpuLayers: 0 }))
    p.catch(() => map.delete(path))
    map.set(path, p)
  }
  return p
}

/** A loaded model (full weights), cached per path. */
export function getOracleModel(ggufPath: string): Promise<LlamaModel> {
  return cached(fullModels, ggufPath, false)
}

async function anyModel(ggufPath: string): Promise<LlamaModel> {
  const full = fullModels.get(ggufPath)
  return full ?? cached(vocabModels, ggufPath, true)
}

export interface TokenizeOptions {
  /** Add BOS/EOS as the model's metadata says (llama_tokenize add_special). Default false. */
  addSpecial?: boolean
  /** Parse special-token text such as "<s>" into their ids (llama_tokenize parse_special). Default false. */
  parseSpecial?: boolean
}

/**
 * llama.cpp's tokenizer. Works on vocab-only GGUFs. node-llama-cpp always calls llama_tokenize with add_special=false,
 * so addSpecial is applied here exactly as llama_tokenize would: BOS first if tokenizer.ggml.add_bos_token (or the
 * vocab type's default) says so, EOS last if tokenizer.ggml.add_eos_token says so.
 */
export async function llamaCppTokenize(ggufPath: string, text: string, opts: TokenizeOptions = {}): Promise<number[]> {
  const model = await anyModel(ggufPath)
  const ids: number[] = [...model.tokenize(text, opts.parseSpecial ?? false)]
  if (opts.addSpecial) {
    if (model.tokens.shouldPrependBosToken && model.tokens.bos != null) ids.unshift(model.tokens.bos)
    if (model.tokens.shouldAppendEosToken && model.tokens.eos != null) ids.push(model.tokens.eos)
  }
  return ids
}

/** llama.cpp's detokenizer (special tokens rendered as text when `special` is true). */
export async function llamaCppDetokenize(ggufPath: string, tokens: number[], special = false): Promise<string> {
  const model = await anyModel(ggufPath)
  return model.detokenize(tokens as never[], special)
}

export interface EvalOptions {
  /** Threads for llama.cpp (default 1). */
  threads?: number
  /** KV cache type (default 'F32'; 'F16' is llama.cpp's own default and costs ~2e-3 in logits). */
  kvCacheType?: 'F32' | 'F16'
  /** tokens per llama_decode call (default: the whole prompt, up to 512); 1 evaluates token by token */
  batchSize?: number
}

function contextOptions(nTokens: number, opts: EvalOptions) {
  const threads = opts.threads ?? 1
  // one spare cell: with a context of exactly nTokens cells the last position's logits come out wrong (measured:
  // max |diff| 1-2 against the same evaluation in a larger context, at the last position only)
  const size = Math.max(32, nTokens + 1)
  return {
    contextSize: size,
    batchSize: opts.batchSize ?? Math.min(size, 512),
    sequences: 1,
    threads: { ideal: threads, min: threads },
    flashAttention: false,
    experimentalKvCacheKeyType: opts.kvCacheType ?? 'F32',
    experimentalKvCacheValueType: opts.kvCacheType ?? 'F32',
    ignoreMemorySafetyChecks: true
  } as const
}

/** n_vocab from the GGUF metadata (length of tokenizer.ggml.tokens). */
export function vocabSize(model: LlamaModel): number {
  const md = model.fileInfo.metadata as { tokenizer?: { ggml?: { tokens?: readonly unknown[] } } }
  const n = md.tokenizer?.ggml?.tokens?.length
  if (!n) throw new Error('vocabSize: GGUF has no tokenizer.ggml.tokens')
  return n
}

/**
 * Full-vocabulary logits at every position, starting from position 0 (a fresh context). Result[i] is the logits
 * after tokens[0..i], i.e. the distribution of token i+1. Index = token id.
 */
export async function llamaCppLogits(ggufPath: string, tokens: number[], opts: EvalOptions = {}): Promise<Float32Array[]> {
  if (tokens.length === 0) return []
  const model = await getOracleModel(ggufPath)
  const nVocab = vocabSize(model)
  const context = await model.createContext(contextOptions(tokens.length, opts))
  try {
    const seq = context.getSequence()
    const input = tokens.map((t) => [t, { generateNext: { logits: true } }]) as Parameters<typeof seq.controlledEvaluate>[0]
    const res = await seq.controlledEvaluate(input)
    return res.map((r, i) => {
      const map = r?.next.logits
      if (!map) throw new Error(`llamaCppLogits: no logits at position ${i}`)
      if (map.size !== nVocab) throw new Error(`llamaCppLogits: ${map.size} logits at position ${i}, expected ${nVocab}`)
      const out = new Float32Array(nVocab)
      for (const [tok, v] of map) out[tok] = v
      return out
    })
  } finally {
    await context.dispose()
  }
}

/**
 * Greedy continuation with llama.cpp's own sampler: temperature 0 (argmax), no repeat penalty, EOS/EOG not treated as
 * a stop, so it always returns exactly nTokens new token ids (the prompt not included).
 */
export async function llamaCppGreedy(
  ggufPath: string,
  promptTokens: number[],
  nTokens: number,
  opts: EvalOptions = {}
): Promise<number[]> {
  if (promptTokens.length === 0) throw new Error('llamaCppGreedy: empty prompt')
  const model = await getOracleModel(ggufPath)
  const context = await model.createContext(contextOptions(promptTokens.length + nTokens, opts))
  try {
    const seq = context.getSequence()
    const out: number[] = []
    if (nTokens <= 0) return out
    for await (const tok of seq.evaluate(promptTokens as never[], { temperature: 0, yieldEogToken: true })) {
      out.push(tok)
      if (out.length >= nTokens) break
    }
    return out
  } finally {
    await context.dispose()
  }
}

export type LlamaCppQuantType = 'q8_0' | 'q4_0' | 'q4_K' | 'q6_K' | 'q4_K_M' | 'q4_K_S' | 'f16'

/**
 * llama_ftype values (include/llama.h of this llama.cpp) and whether to pass `pure` (every 2-D weight in the single
 * target type instead of llama.cpp's per-tensor mix).
 *  q8_0   -> LLAMA_FTYPE_MOSTLY_Q8_0 (7)     mix; for Q8_0 the mix is Q8_0 everywhere (1-D norms stay F32)
 *  q4_0   -> LLAMA_FTYPE_MOSTLY_Q4_0 (2)     mix as llama-quantize makes it: output.weight gets Q6_K (Q8_0 fallback)
 *  q4_K   -> LLAMA_FTYPE_MOSTLY_Q4_K_S (14)  pure: every 2-D weight Q4_K (incl. token_embd/output)
 *  q6_K   -> LLAMA_FTYPE_MOSTLY_Q6_K (18)    pure: every 2-D weight Q6_K
 *  q4_K_M -> LLAMA_FTYPE_MOSTLY_Q4_K_M (15)  mix (Q4_K + Q6_K for some attn_v/ffn_down/output)
 *  q4_K_S -> LLAMA_FTYPE_MOSTLY_Q4_K_S (14)  mix
 *  f16    -> LLAMA_FTYPE_MOSTLY_F16 (1)
 * K-quants need ne0 (the row length, GGUF dims[0]) % 256 == 0. Otherwise llama.cpp silently falls back per tensor:
 * Q4_K -> Q5_0, Q6_K -> Q8_0 (and F16 if not even % 32). So with dim 64 models a "q4_K" file is in fact Q5_0;
 * use dim and ffn multiples of 256 (e.g. dim 256, ffn 512 or 768) to get real K-quant tensors.
 */
export const QUANT_FTYPES: Record<LlamaCppQuantType, { ftype: number; pure: boolean }> = {
  q8_0: { ftype: 7, pure: false },
  q4_0: { ftype: 2, pure: false },
  q4_K: { ftype: 14, pure: true },
  q6_K: { ftype: 18, pure: true },
  q4_K_M: { ftype: 15, pure: false },
  q4_K_S: { ftype: 14, pure: false },
  f16: { ftype: 1, pure: false }
}

export interface QuantizeOptions {
  /** Override the table's `pure` choice. */
  pure?: boolean
  /** Quantizer threads (default 1). */
  nthread?: number
}

/** Quantizes srcGguf (F32/F16) into dstGguf with llama.cpp's own llama_model_quantize, in a child process. */
export async function llamaCppQuantize(
  srcGguf: string,
  dstGguf: string,
  type: LlamaCppQuantType,
  opts: QuantizeOptions = {}
): Promise<void> {
  const q = QUANT_FTYPES[type]
  if (!q) throw new Error(`llamaCppQuantize: unknown type ${type}`)
  const script = fileURLToPath(new URL('./quantize-child.mjs', import.meta.url))
  const args = [script, srcGguf, dstGguf, String(q.ftype), (opts.pure ?? q.pure) ? '1' : '0', String(opts.nthread ?? 1)]
  await new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => {
      const line = stdout.trim().split('\n').pop() ?? ''
      let msg: { ok?: boolean; error?: string } = {}
      try {
        msg = JSON.parse(line) as typeof msg
      } catch {
        /* fallthrough */
      }
      if (code === 0 && msg.ok) resolve()
      else reject(new Error(`llamaCppQuantize(${type}) failed (exit ${code}): ${msg.error ?? line}\n${stderr.slice(-4000)}`))
    })
  })
}

/** GGML type names by id, for the types the oracle produces. */
export const GGML_TYPE_NAMES: Record<number, string> = {
  0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 8: 'Q8_0', 10: 'Q2_K', 11: 'Q3_K', 12: 'Q4_K',
  13: 'Q5_K', 14: 'Q6_K', 30: 'BF16'
}

/** Tensor name -> ggml type name (e.g. 'Q8_0'), read from a GGUF header with node-llama-cpp's GGUF reader. */
export async function ggufTensorTypes(ggufPath: string): Promise<Map<string, string>> {
  const { readGgufFileInfo } = await import('node-llama-cpp')
  const info = await readGgufFileInfo(ggufPath, { readTensorInfo: true, sourceType: 'filesystem', logWarnings: false })
  const out = new Map<string, string>()
  for (const t of info.tensorInfo ?? []) out.set(t.name, GGML_TYPE_NAMES[t.ggmlType] ?? `type${t.ggmlType}`)
  return out
}

/** Frees every cached model and the Llama instance. */
export async function disposeLlamaCpp(): Promise<void> {
  const all = [...vocabModels.values(), ...fullModels.values()]
  vocabModels.clear()
  fullModels.clear()
  for (const p of all) {
    try {
      await (await p).dispose()
    } catch {
      /* already failed to load */
    }
  }
  if (llamaPromise) {
    const l = llamaPromise
    llamaPromise = undefined
    try {
      await (await l).dispose()
    } catch {
      /* ignore */
    }
  }
}
