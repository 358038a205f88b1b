#!/usr/bin/env node
// Held-out perplexity of a model with our own runtime and, on a GGUF file, with llama.cpp (node-llama-cpp 3.22.1
// prebuilt CPU binary), side by side.
//
//   node scripts/perplexity.mjs [--model PATH] [--hf DIR] [--file TEXT] [--ctx N] [--max-tokens N]
//                               [--only ours|llama] [--threads N] [--json]
//
// Defaults: --model the embedded default model's GGUF (defaultModelPath()), --file
// scripts/train-default-model/heldout.txt (the first 40 KB of whole verses of the default model's validation
// split), --ctx the model's context length. Build first: npx -y pnpm@10.34.8 exec tsc -b
//
// Method (the same as scripts/train-default-model/train.py's evaluation): the text is tokenized once without
// special tokens by our tokenizer of --model; the ids are cut into non-overlapping windows of ctx - 1 tokens, each
// preceded by BOS; every token of a window is scored given the window's earlier tokens (BOS itself is never scored).
// Perplexity = exp(mean negative log-likelihood), log-softmax in f64. Ours: LocalModel (default backend registry)
// over the whole window at once. llama.cpp: full-vocabulary logits at every position via controlledEvaluate, F32
// KV cache, flash attention off, a cleared sequence per window. --hf adds our runtime on a Hugging Face directory
// (tokenized with the GGUF's ids, so the figures are comparable).
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const kernels = await import(pathToFileURL(join(root, 'packages/kernels/dist/index.js')).href)
const { openModel, loadTokenizer, LocalModel, defaultModelPath } = kernels

function parseArgs (argv) {
  const o = { file: join(root, 'scripts/train-default-model/heldout.txt'), threads: 1, json: false }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`missing value for ${a}`)
      return v
    }
    if (a === '--model') o.model = next()
    else if (a === '--hf') o.hf = next()
    else if (a === '--file') o.file = next()
    else if (a === '--ctx') o.ctx = Number(next())
    else if (a === '--max-tokens') o.maxTokens = Number(next())
    else if (a === '--only') o.only = next()
    else if (a === '--threads') o.threads = Number(next())
    else if (a === '--json') o.json = true
    else if (a === '--help' || a === '-h') o.help = true
    else throw new Error(`unknown argument ${a}`)
  }
  o.model ??= defaultModelPath()
  return o
}

/** -log softmax(logits)[target], in f64 */
function nll (logits, offset, n, target) {
  let max = -Infinity
  for (let i = 0; i < n; i++) max = Math.max(max, logits[offset + i])
  let sum = 0
  for (let i = 0; i < n; i++) sum += Math.exp(logits[offset + i] - max)
  return Math.log(sum) + max - logits[offset + target]
}

function windowsOf (ids, bos, ctx) {
  const out = []
  for (let i = 0; i < ids.length; i += ctx - 1) out.push([bos, ...ids.slice(i, i + ctx - 1)])
  return out
}

async function ours (path, windows) {
  const source = await openModel(path)
  try {
    const model = await LocalModel.load(source)
    const V = model.config.vocabSize
    let total = 0
    let count = 0
    const t0 = performance.now()
    for (const w of windows) {
      const logits = model.createSession(w.length).forward(w, { allLogits: true }) // [T, vocab]
      for (let t = 0; t + 1 < w.length; t++) total += nll(logits, t * V, V, w[t + 1])
      count += w.length - 1
    }
    return { nll: total / count, ppl: Math.exp(total / count), tokens: count, seconds: (performance.now() - t0) / 1000 }
  } finally {
    await source.close()
  }
}

async function llamaCpp (path, windows, ctx, threads) {
  const req = createRequire(join(root, 'test', 'package.json'))
  process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD ??= 'true'
  const { getLlama, LlamaLogLevel } = await import(pathToFileURL(req.resolve('node-llama-cpp')).href)
  const llama = await getLlama({ build: 'never', gpu: false, usePrebuiltBinaries: true, skipDownload: true, progressLogs: false, logLevel: LlamaLogLevel.error })
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 })
  const context = await model.createContext({
    contextSize: ctx,
    batchSize: ctx,
    sequences: 1,
    threads: { ideal: threads, min: threads },
    flashAttention: false,
    experimentalKvCacheKeyType: 'F32',
    experimentalKvCacheValueType: 'F32',
    ignoreMemorySafetyChecks: true
  })
  try {
    const seq = context.getSequence()
    let total = 0
    let count = 0
    const t0 = performance.now()
    for (const w of windows) {
      await seq.clearHistory()
      const res = await seq.controlledEvaluate(w.map((t) => [t, { generateNext: { logits: true } }]))
      for (let t = 0; t + 1 < w.length; t++) {
        const map = res[t]?.next.logits
        if (map === undefined) throw new Error(`llama.cpp returned no logits at position ${t}`)
        const logits = new Float64Array(map.size)
        for (const [id, v] of map) logits[id] = v
        total += nll(logits, 0, logits.length, w[t + 1])
      }
      count += w.length - 1
    }
    return { nll: total / count, ppl: Math.exp(total / count), tokens: count, seconds: (performance.now() - t0) / 1000 }
  } finally {
    await context.dispose()
    await model.dispose()
    await llama.dispose()
  }
}

const o = parseArgs(process.argv.slice(2))
if (o.help) {
  console.log('usage: node scripts/perplexity.mjs [--model PATH] [--hf DIR] [--file TEXT] [--ctx N] [--max-tokens N] [--only ours|llama] [--threads N] [--json]')
  process.exit(0)
}
const text = readFileSync(o.file, 'utf8')
const source = await openModel(o.model)
const tokenizer = await loadTokenizer(source)
const ctx = o.ctx ?? source.config.contextLength
const isGguf = source.format === 'gguf'
await source.close()
let ids = tokenizer.encode(text, { addSpecial: false })
if (o.maxTokens !== undefined) ids = ids.slice(0, o.maxTokens)
const bos = tokenizer.specials.bosTokenId
if (bos === undefined) throw new Error('the model has no BOS token')
const windows = windowsOf(ids, bos, ctx)

const results = { file: o.file, chars: text.length, tokens: ids.length, ctx, windows: windows.length }
if (o.only !== 'llama') results.ours = { model: o.model, ...await ours(o.model, windows) }
if (o.hf !== undefined && o.only !== 'llama') results.oursHf = { model: o.hf, ...await ours(o.hf, windows) }
if (o.only !== 'ours' && isGguf) results.llamaCpp = { model: o.model, ...await llamaCpp(o.model, windows, ctx, o.threads) }

if (o.json) console.log(JSON.stringify(results))
else {
  console.log(`${o.file}: ${text.length} chars, ${ids.length} tokens, ${windows.length} windows of BOS + up to ${ctx - 1} tokens`)
  const row = (name, r) => console.log(`${name.padEnd(22)} ppl ${r.ppl.toFixed(4).padStart(9)}  nll/token ${r.nll.toFixed(6)}  (${r.tokens} tokens, ${r.seconds.toFixed(1)} s)`)
  if (results.ours) row('ours (' + (isGguf ? 'GGUF' : 'HF') + ')', results.ours)
  if (results.oursHf) row('ours (HF dir)', results.oursHf)
  if (results.llamaCpp) row('llama.cpp (GGUF)', results.llamaCpp)
  if (results.ours && results.llamaCpp) console.log(`|ours - llama.cpp| nll/token ${Math.abs(results.ours.nll - results.llamaCpp.nll).toExponential(2)}`)
}
