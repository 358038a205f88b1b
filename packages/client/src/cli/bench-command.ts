/** `swarm bench`: load time, prefill and greedy decode throughput, peak memory of one model in this process. */
import { argmax, BACKEND_CHOICES, createRandom, measureReadBandwidth, WebGpuBlockExecutor } from '@swarm/kernels'
import { ContextOverflowError } from '../errors.js'
import { choiceFlag, integerFlag, parseFlags, modelPathOf } from './args.js'
import { loadWeights, modelBytes, openSource } from './model.js'
import type { CommandContext } from './context.js'
import { sessionFlagsOf, swarmFlags, swarmFlagsHelp, targetOf, withSwarmModel } from './swarm-target.js'

export const DEFAULT_BENCH_PROMPT_TOKENS = 128
export const DEFAULT_BENCH_GEN_TOKENS = 64
/** seed of the pseudo-random prompt ids, fixed so every run (and every engine) sees the same prompt */
const PROMPT_SEED = 1234

export const benchHelp = `Usage: swarm bench [--model PATH] [--bootstrap MULTIADDR] [options]

Loads the model, runs a prefill of pseudo-random prompt ids (the same ids on every run), then greedy-decodes,
and prints load time, prefill and decode tokens/s and peak RSS. With --bootstrap the blocks run on the swarm
(this process holds the head only) and the figures are end to end through the route; peak RSS is this client's.

Options:
  --model PATH          GGUF file or Hugging Face model directory (default: the embedded default model)
${swarmFlagsHelp.replace(/ {4}(?=\S)/g, '')}  --threads N           compute threads, the main thread included (wasm backend; default every core)
  --backend B           cpu | wasm | auto | webgpu (default auto: wasm when it loads, else the CPU reference;
                        webgpu runs the blocks on the GPU, lavapipe without one, and prints its read bandwidth)
  --prompt-tokens P     prompt length (default ${DEFAULT_BENCH_PROMPT_TOKENS})
  --gen-tokens G        tokens to decode (default ${DEFAULT_BENCH_GEN_TOKENS})
  --json                print {model, backend, threads, promptTokens, genTokens, loadMs, prefillTokensPerSecond,
                        decodeTokensPerSecond, peakRssBytes, fileBytes}
  -h, --help            show this help
`

export interface BenchResult {
  model: string
  /** the backend that ran the ops ('wasm' or 'cpu-reference'; local runs only) */
  backend?: string
  /** the --threads value, or null when the backend's default was used */
  threads: number | null
  /** threads the backend actually runs (local runs only) */
  threadsUsed?: number
  promptTokens: number
  genTokens: number
  loadMs: number
  prefillTokensPerSecond: number
  decodeTokensPerSecond: number
  /** peak resident set size of this process */
  peakRssBytes: number
  /** bytes of the model file (or of every file of a model directory) */
  fileBytes: number
  /** with --backend webgpu: the device's streaming read bandwidth over a 64 MiB buffer, GB/s */
  deviceReadGBps?: number
  /** with --bootstrap: the route the session took */
  route?: Array<{ peerId: string, blocks: [number, number] }>
}

/** `count` ids in [0, vocabSize), the same for a given count and vocabulary */
export function benchPromptIds (count: number, vocabSize: number): number[] {
  const random = createRandom(PROMPT_SEED)
  return Array.from({ length: count }, () => Math.floor(random() * vocabSize))
}

export async function benchCommand (args: string[], ctx: CommandContext): Promise<void> {
  const values = parseFlags('swarm bench', args, {
    model: { type: 'string' },
    threads: { type: 'string' },
    backend: { type: 'string' },
    'prompt-tokens': { type: 'string' },
    'gen-tokens': { type: 'string' },
    json: { type: 'boolean' },
    ...swarmFlags
  })
  if (values.help === true) {
    ctx.stdout(benchHelp)
    return
  }
  const modelPath = modelPathOf(values)
  const threads = integerFlag(values, 'threads', 1)
  const promptTokens = integerFlag(values, 'prompt-tokens', 1) ?? DEFAULT_BENCH_PROMPT_TOKENS
  const genTokens = integerFlag(values, 'gen-tokens', 1) ?? DEFAULT_BENCH_GEN_TOKENS
  const json = values.json === true
  const backendChoice = choiceFlag(values, 'backend', BACKEND_CHOICES) ?? 'auto'
  if (targetOf(values, { localFlag: false }) === 'swarm') {
    const started = performance.now()
    await withSwarmModel(values, modelPath, ctx, async model => {
      const { contextLength, vocabSize } = model.config
      if (promptTokens + genTokens > contextLength) {
        throw new ContextOverflowError(`${promptTokens} prompt + ${genTokens} generated tokens exceed the model's context length of ${contextLength}`)
      }
      const session = await model.inferenceSession({ maxLength: promptTokens + genTokens, signal: ctx.signal, ...sessionFlagsOf(values) })
      const loadMs = performance.now() - started
      try {
        const runner = model.runner(session, ctx.signal)
        const timings = await timeRun(async tokens => await runner.forward(tokens), benchPromptIds(promptTokens, vocabSize), genTokens, ctx.signal)
        report({ model: modelPath, threads: threads ?? null, promptTokens, genTokens, loadMs, ...timings, peakRssBytes: process.resourceUsage().maxRSS * 1024, fileBytes: await modelBytes(modelPath), route: session.route }, ctx, json)
      } finally {
        await session.close()
      }
    }, { backend: backendChoice, threads })
    return
  }

  const source = await openSource(modelPath, ctx.signal)
  try {
    const { contextLength, vocabSize } = source.config
    if (promptTokens + genTokens > contextLength) {
      throw new ContextOverflowError(`${promptTokens} prompt + ${genTokens} generated tokens exceed the model's context length of ${contextLength}`)
    }
    if (!json) ctx.stderr(`loading ${modelPath} ...\n`)
    const { model, loadMs, backend, threads: threadsUsed, executor } = await loadWeights(source, { signal: ctx.signal, threads, backend: backendChoice })
    const session = model.createSession(promptTokens + genTokens)
    const timings = await timeRun(async tokens => await session.forwardAsync(tokens, { signal: ctx.signal }), benchPromptIds(promptTokens, vocabSize), genTokens, ctx.signal)
    session.dispose()
    const deviceReadGBps = executor instanceof WebGpuBlockExecutor ? await measureReadBandwidth(executor.kernels) : undefined
    report({
      model: modelPath, backend, threads: threads ?? null, threadsUsed, promptTokens, genTokens, loadMs, ...timings,
      peakRssBytes: process.resourceUsage().maxRSS * 1024, fileBytes: await modelBytes(modelPath), deviceReadGBps
    }, ctx, json, `${source.config.architecture}, ${source.config.nLayers} layers`)
  } finally {
    await source.close()
  }
}

/** prefill of `prompt`, then `genTokens` greedy decode steps; tokens/s of each phase */
async function timeRun (forward: (tokens: number[]) => Float32Array | Promise<Float32Array>, prompt: number[], genTokens: number, signal: AbortSignal): Promise<{ prefillTokensPerSecond: number, decodeTokensPerSecond: number }> {
  let started = performance.now()
  let next = argmax(await forward(prompt))
  const prefillMs = performance.now() - started
  started = performance.now()
  for (let i = 0; i < genTokens; i++) {
    signal.throwIfAborted()
    next = argmax(await forward([next]))
  }
  const decodeMs = performance.now() - started
  return { prefillTokensPerSecond: prompt.length / (prefillMs / 1000), decodeTokensPerSecond: genTokens / (decodeMs / 1000) }
}

function report (result: BenchResult, ctx: CommandContext, json: boolean, describe?: string): void {
  if (json) {
    ctx.stdout(JSON.stringify(result) + '\n')
    return
  }
  const mib = (n: number): string => (n / 2 ** 20).toFixed(1) + ' MiB'
  ctx.stdout([
    `model     ${result.model} (${mib(result.fileBytes)}${describe !== undefined ? `, ${describe}` : ''})`,
    ...(result.route !== undefined ? [`route     ${result.route.map(r => `[${r.blocks[0]}, ${r.blocks[1]}) on ${r.peerId.slice(-8)}`).join(' -> ')}`] : []),
    `threads   ${result.threadsUsed ?? result.threads ?? 'default'}${result.backend !== undefined ? ` (backend ${result.backend})` : ''}`,
    `load      ${result.loadMs.toFixed(0)} ms`,
    `prefill   ${result.promptTokens} tokens, ${result.prefillTokensPerSecond.toFixed(1)} tokens/s`,
    `decode    ${result.genTokens} tokens, ${result.decodeTokensPerSecond.toFixed(1)} tokens/s`,
    ...(result.deviceReadGBps !== undefined ? [`device    streaming read ${result.deviceReadGBps.toFixed(2)} GB/s (64 MiB buffer)`] : []),
    `peak RSS  ${mib(result.peakRssBytes)}`
  ].join('\n') + '\n')
}
