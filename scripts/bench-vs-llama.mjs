#!/usr/bin/env node
// Speed anchor: our engine vs llama.cpp (node-llama-cpp 3.22.1 prebuilt CPU binary) on the same GGUF file.
//
//   node scripts/bench-vs-llama.mjs --model PATH [--threads 1] [--prompt-tokens 128] [--gen-tokens 64] [--runs 3]
//                                   [--only llama|ours] [--kv f32|f16] [--ctx 512] [--json] [--ours-cli PATH]
//                                   [--backend cpu|wasm|auto] [--bandwidth]
//
// --bandwidth also prints the machine's memory bandwidth as our wasm backend sees it: a streaming-read SIMD kernel
// over 512 MiB of wasm memory on the same thread count (best of 5), the ceiling for a memory-bound decode; and the
// peak-RSS budget 1.15 x file + KV cache (ctx positions, f32) + 150 MiB next to our peak RSS.
//
// Each run is a fresh child process per engine (ours, then llama.cpp, alternating run by run so that machine load
// hits both alike); the table shows medians over runs.
//
// llama.cpp settings: same file, same thread count, context 512, batch 512 (the whole prompt in one batch),
// flash attention off, mmap on (llama.cpp's default), KV cache F32 by default to match our engine (llama-bench
// would use F16: pass --kv f16 for that). Prompt: seeded random token ids in [3, n_vocab). One warm-up evaluation of
// 8 tokens precedes timing (as llama-bench warms up). Prefill tok/s = P / (time from submitting the P-token prompt
// to the first sampled token); decode tok/s = G / (time of the G following single-token steps, greedy via
// llama.cpp's sampler at temperature 0, EOS ignored). Peak RSS = VmHWM of the child process (mmapped weights that
// were touched count in it).
//
// Ours: `node packages/client/dist/cli.js bench --model PATH --threads N --prompt-tokens P --gen-tokens G --json
// [--backend B]`, whose last JSON line must hold prefillTokensPerSecond, decodeTokensPerSecond and (optionally)
// peakRssBytes and backend. Without --backend ours runs the CLI's default backend (the table names the one used).
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

function parseArgs(argv) {
  const o = { threads: 1, promptTokens: 128, genTokens: 64, runs: 3, only: null, kv: 'f32', ctx: 512, json: false }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`missing value for ${a}`)
      return v
    }
    if (a === '--model') o.model = next()
    else if (a === '--threads') o.threads = Number(next())
    else if (a === '--prompt-tokens') o.promptTokens = Number(next())
    else if (a === '--gen-tokens') o.genTokens = Number(next())
    else if (a === '--runs') o.runs = Number(next())
    else if (a === '--only') o.only = next()
    else if (a === '--kv') o.kv = next().toLowerCase()
    else if (a === '--ctx') o.ctx = Number(next())
    else if (a === '--json') o.json = true
    else if (a === '--ours-cli') o.oursCli = next()
    else if (a === '--backend') o.backend = next()
    else if (a === '--bandwidth') o.bandwidth = true
    else if (a === '--child-bandwidth') o.childBandwidth = true
    else if (a === '--child-llama') o.childLlama = true
    else if (a === '--help' || a === '-h') o.help = true
    else throw new Error(`unknown argument ${a}`)
  }
  return o
}

function peakRssBytes() {
  try {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync('/proc/self/status', 'utf8'))
    return m ? Number(m[1]) * 1024 : null
  } catch {
    return null
  }
}

function mulberry32(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// ---- llama.cpp child: one run, prints one JSON line ----
async function llamaChild(o) {
  process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD ??= 'true'
  const req = createRequire(join(root, 'test', 'package.json'))
  const { getLlama, LlamaLogLevel } = await import(pathToFileURL(req.resolve('node-llama-cpp')).href)
  const tLoad0 = performance.now()
  const llama = await getLlama({ build: 'never', gpu: false, skipDownload: true, progressLogs: false, maxThreads: 0, logLevel: LlamaLogLevel.error })
  const model = await llama.loadModel({ modelPath: o.model, gpuLayers: 0 })
  const nVocab = model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length
  if (!nVocab) throw new Error('no tokenizer.ggml.tokens in GGUF')
  const kv = o.kv === 'f16' ? 'F16' : 'F32'
  if (o.promptTokens + o.genTokens + 1 > o.ctx) throw new Error(`prompt + gen tokens exceed --ctx ${o.ctx}`)
  const context = await model.createContext({
    contextSize: o.ctx,
    batchSize: o.ctx,
    sequences: 1,
    threads: { ideal: o.threads, min: o.threads },
    flashAttention: false,
    experimentalKvCacheKeyType: kv,
    experimentalKvCacheValueType: kv,
    ignoreMemorySafetyChecks: true
  })
  const seq = context.getSequence()
  const loadSeconds = (performance.now() - tLoad0) / 1000
  const rand = mulberry32(12345)
  const prompt = Array.from({ length: o.promptTokens }, () => 3 + Math.floor(rand() * (nVocab - 3)))
  // warm-up
  await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, 8))
  await seq.clearHistory()

  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  let tFirst = 0
  let n = 0
  for await (const _tok of seq.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
    n++
    if (n === 1) tFirst = performance.now()
    if (n === o.genTokens + 1) break
  }
  const tEnd = performance.now()
  const cpu = process.cpuUsage(cpu0)
  const out = {
    engine: 'llama.cpp',
    prefillTokensPerSecond: o.promptTokens / ((tFirst - t0) / 1000),
    decodeTokensPerSecond: o.genTokens / ((tEnd - tFirst) / 1000),
    promptTokens: o.promptTokens,
    genTokens: o.genTokens,
    threads: o.threads,
    kvCache: kv,
    loadSeconds,
    // process CPU time / wall time over the timed part: ~threads when llama.cpp really used that many cores
    cpuUtilization: (cpu.user + cpu.system) / 1000 / (tEnd - t0),
    peakRssBytes: peakRssBytes()
  }
  await context.dispose()
  await model.dispose()
  await llama.dispose()
  process.stdout.write(JSON.stringify(out) + '\n')
}

// ---- parent ----
function runChild(cmd, args) {
  return new Promise((resolveP, reject) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: 'true' } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => {
      const lines = stdout.trim().split('\n').reverse()
      for (const line of lines) {
        try {
          const j = JSON.parse(line)
          if (j && typeof j === 'object' && 'prefillTokensPerSecond' in j) {
            if (code !== 0) break
            return resolveP(j)
          }
        } catch {
          /* not JSON */
        }
      }
      reject(new Error(`${cmd} ${args.join(' ')} exited ${code} without a result\n${stdout.slice(-2000)}\n${stderr.slice(-4000)}`))
    })
  })
}

const median = (xs) => {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return null
  const m = v.length >> 1
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2
}

const fmt = (x, digits = 2) => (x == null ? '-' : x.toFixed(digits))
const mib = (x) => (x == null ? '-' : (x / 1048576).toFixed(0) + ' MiB')

async function main() {
  const o = parseArgs(process.argv.slice(2))
  if (o.help || !o.model) {
    process.stdout.write(
      'usage: node scripts/bench-vs-llama.mjs --model PATH [--threads N] [--prompt-tokens 128] [--gen-tokens 64] [--runs 3] [--only llama|ours] [--kv f32|f16] [--ctx 512] [--json] [--ours-cli PATH] [--backend cpu|wasm|auto]\n'
    )
    process.exitCode = o.help ? 0 : 2
    return
  }
  o.model = resolve(o.model)
  if (!existsSync(o.model)) throw new Error(`no such model file: ${o.model}`)
  if (o.childLlama) return llamaChild(o)
  if (o.childBandwidth) return bandwidthChild(o)

  const self = fileURLToPath(import.meta.url)
  const llamaArgs = [self, '--child-llama', '--model', o.model, '--threads', String(o.threads), '--prompt-tokens', String(o.promptTokens), '--gen-tokens', String(o.genTokens), '--kv', o.kv, '--ctx', String(o.ctx)]
  const oursCli = o.oursCli ? resolve(o.oursCli) : join(root, 'packages', 'client', 'dist', 'cli.js')
  const oursArgs = [oursCli, 'bench', '--model', o.model, '--threads', String(o.threads), '--prompt-tokens', String(o.promptTokens), '--gen-tokens', String(o.genTokens), '--json']
  if (o.backend) oursArgs.push('--backend', o.backend)
  const doOurs = o.only !== 'llama'
  const doLlama = o.only !== 'ours'
  if (doOurs && !existsSync(oursCli)) throw new Error(`${oursCli} not built (run pnpm build), or pass --only llama`)

  const results = { ours: [], llama: [] }
  for (let r = 0; r < o.runs; r++) {
    if (doOurs) {
      const j = await runChild(process.execPath, oursArgs)
      results.ours.push(j)
      if (!o.json) process.stderr.write(`run ${r + 1}/${o.runs} ours:      prefill ${fmt(j.prefillTokensPerSecond)} tok/s, decode ${fmt(j.decodeTokensPerSecond)} tok/s\n`)
    }
    if (doLlama) {
      const j = await runChild(process.execPath, llamaArgs)
      results.llama.push(j)
      if (!o.json) process.stderr.write(`run ${r + 1}/${o.runs} llama.cpp: prefill ${fmt(j.prefillTokensPerSecond)} tok/s, decode ${fmt(j.decodeTokensPerSecond)} tok/s\n`)
    }
  }
  const summary = (rs) =>
    rs.length === 0
      ? null
      : {
          prefillTokensPerSecond: median(rs.map((x) => x.prefillTokensPerSecond)),
          decodeTokensPerSecond: median(rs.map((x) => x.decodeTokensPerSecond)),
          peakRssBytes: median(rs.map((x) => x.peakRssBytes))
        }
  const ours = summary(results.ours)
  const llama = summary(results.llama)
  const report = {
    model: o.model,
    threads: o.threads,
    promptTokens: o.promptTokens,
    genTokens: o.genTokens,
    runs: o.runs,
    llamaKvCache: o.kv.toUpperCase(),
    oursBackend: results.ours[0]?.backend ?? o.backend ?? null,
    ours,
    llama,
    ratio:
      ours && llama
        ? {
            prefill: ours.prefillTokensPerSecond / llama.prefillTokensPerSecond,
            decode: ours.decodeTokensPerSecond / llama.decodeTokensPerSecond
          }
        : null,
    raw: results
  }
  if (o.json) {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n')
    return
  }
  const rows = [
    ['metric (median of ' + o.runs + ')', 'ours', 'llama.cpp', 'ours/llama'],
    ['prefill tok/s (' + o.promptTokens + ' tokens)', fmt(ours?.prefillTokensPerSecond), fmt(llama?.prefillTokensPerSecond), report.ratio ? fmt(report.ratio.prefill, 3) : '-'],
    ['decode tok/s (' + o.genTokens + ' tokens)', fmt(ours?.decodeTokensPerSecond), fmt(llama?.decodeTokensPerSecond), report.ratio ? fmt(report.ratio.decode, 3) : '-'],
    ['peak RSS', mib(ours?.peakRssBytes), mib(llama?.peakRssBytes), ours?.peakRssBytes && llama?.peakRssBytes ? fmt(ours.peakRssBytes / llama.peakRssBytes, 3) : '-']
  ]
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)))
  const line = (r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')
  process.stdout.write(`model ${o.model}\nthreads ${o.threads}, ctx ${o.ctx}, llama.cpp KV cache ${o.kv.toUpperCase()}, flash attention off, our backend ${report.oursBackend ?? 'default'}\n`)
  process.stdout.write(line(rows[0]) + '\n' + widths.map((w) => '-'.repeat(w)).join('  ') + '\n')
  for (const r of rows.slice(1)) process.stdout.write(line(r) + '\n')
  if (o.bandwidth) await printBandwidth(o, ours)
}

// ---- memory bandwidth child: streaming-read wasm kernel, prints one JSON line ----
async function bandwidthChild(o) {
  const kernels = await import(pathToFileURL(join(root, 'packages', 'kernels', 'dist', 'index.js')).href)
  const backend = await kernels.createWasmBackend({ threads: o.threads })
  const gbPerSecond = backend.measureBandwidth(512 * 2 ** 20, 5)
  const source = await kernels.openModel(o.model)
  const c = source.config
  const kvBytes = c.nLayers * o.ctx * c.nKvHeads * c.headDim * 2 * 4
  await source.close()
  await backend.close()
  process.stdout.write(JSON.stringify({ prefillTokensPerSecond: 0, gbPerSecond, kvBytes }) + '\n')
}

async function printBandwidth(o, ours) {
  const j = await runChild(process.execPath, [fileURLToPath(import.meta.url), '--child-bandwidth', '--model', o.model, '--threads', String(o.threads), '--ctx', String(o.ctx)])
  const fileBytes = statSync(o.model).size
  const budget = 1.15 * fileBytes + j.kvBytes + 150 * 2 ** 20
  process.stdout.write(`memory bandwidth (wasm streaming read, ${o.threads} thread${o.threads === 1 ? '' : 's'}): ${j.gbPerSecond.toFixed(1)} GB/s\n`)
  if (ours?.peakRssBytes) {
    process.stdout.write(`peak RSS budget 1.15 x file + KV(ctx ${o.ctx}) + 150 MiB = ${mib(budget)}; ours ${mib(ours.peakRssBytes)} (${ours.peakRssBytes <= budget ? 'within' : 'OVER'})\n`)
  }
}

main().catch((e) => {
  process.stderr.write(String(e?.stack ?? e) + '\n')
  process.exitCode = 1
})
