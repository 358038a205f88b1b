/** `swarm generate`: text generation, in this process (--local) or through the swarm (--bootstrap). */
import { ContextOverflowError } from '../errors.js'
import { DEFAULT_MAX_TOKENS, encodePrompt, runGeneration } from '../generate.js'
import { choiceFlag, integerFlag, numberFlag, parseFlags, UsageError, modelPathOf } from './args.js'
import { loadLocalModel } from './model.js'
import type { CommandContext } from './context.js'
import { sessionFlagsOf, swarmFlags, swarmFlagsHelp, targetOf, withSwarmModel } from './swarm-target.js'
import { BACKEND_CHOICES, type GenerationDefaults, type Tokenizer } from '@swarm/kernels'
import type { Runner } from '../generate.js'

/** sampling defaults when the model files declare none: greedy, with top-k/top-p ready for --temperature > 0 */
export const DEFAULT_TEMPERATURE = 0
export const DEFAULT_TOP_K = 40
export const DEFAULT_TOP_P = 0.95
export const DEFAULT_REPETITION_PENALTY = 1

export const generateHelp = `Usage: swarm generate (--local | --bootstrap MULTIADDR) [--model PATH] --prompt TEXT [options]

Generates text after a prompt and streams it to stdout. With --bootstrap the client loads only the embeddings,
final norm and LM head of the model file and runs every transformer block on the swarm's nodes.

Options:
  --local                   run the whole model in this process
${swarmFlagsHelp}  --model PATH              GGUF file or Hugging Face model directory (default: the embedded default model)
  --prompt TEXT             the prompt
  --max-tokens N            most tokens to generate (default ${DEFAULT_MAX_TOKENS})
  --temperature T           0 = greedy (default: the model's generation config, else ${DEFAULT_TEMPERATURE})
  --top-k K                 keep the K most likely tokens, 0 = off (default: model's, else ${DEFAULT_TOP_K})
  --top-p P                 nucleus sampling, in (0, 1] (default: model's, else ${DEFAULT_TOP_P})
  --repetition-penalty R    > 1 discourages repeats, 1 = off (default: model's, else ${DEFAULT_REPETITION_PENALTY})
  --seed S                  sampling seed, an integer (default: random)
  --stop STR                stop when the text contains STR (not printed); repeatable
  --chat                    wrap the prompt as one user message in the model's chat template
  --context N               KV cache length in tokens (default: prompt + max tokens, at most the model's context)
  --threads N               worker threads for backends that use them
  --backend B               cpu | wasm | auto | webgpu (default auto: wasm when it loads, else the CPU reference;
                            webgpu runs the blocks on the GPU, lavapipe without one); with --bootstrap it picks
                            what runs the embeddings and LM head here (webgpu = auto), the nodes pick their own
  --json                    print one JSON object {tokens, text, promptTokens, finishReason, timings} instead of
                            streaming text; logs go to stderr
  -h, --help                show this help
`

export async function generateCommand (args: string[], ctx: CommandContext): Promise<void> {
  const values = parseFlags('swarm generate', args, {
    local: { type: 'boolean' },
    model: { type: 'string' },
    prompt: { type: 'string' },
    'max-tokens': { type: 'string' },
    temperature: { type: 'string' },
    'top-k': { type: 'string' },
    'top-p': { type: 'string' },
    'repetition-penalty': { type: 'string' },
    seed: { type: 'string' },
    stop: { type: 'string', multiple: true },
    chat: { type: 'boolean' },
    context: { type: 'string' },
    threads: { type: 'string' },
    backend: { type: 'string' },
    json: { type: 'boolean' },
    ...swarmFlags
  })
  if (values.help === true) {
    ctx.stdout(generateHelp)
    return
  }
  const target = targetOf(values, { localFlag: true })
  const modelPath = modelPathOf(values)
  const prompt = values.prompt
  if (typeof prompt !== 'string') throw new UsageError('--prompt is required')
  const maxTokens = integerFlag(values, 'max-tokens', 1) ?? DEFAULT_MAX_TOKENS
  const temperatureFlag = numberFlag(values, 'temperature', { min: 0 })
  const topKFlag = integerFlag(values, 'top-k', 0)
  const topPFlag = numberFlag(values, 'top-p', { min: 0, minExclusive: true, max: 1 })
  const penaltyFlag = numberFlag(values, 'repetition-penalty', { min: 0, minExclusive: true })
  const seed = integerFlag(values, 'seed', 0)
  const contextFlag = integerFlag(values, 'context', 1)
  const threads = integerFlag(values, 'threads', 1)
  const backend = choiceFlag(values, 'backend', BACKEND_CHOICES) ?? 'auto'
  const stop = (values.stop as string[] | undefined) ?? []
  if (stop.some(s => s.length === 0)) throw new UsageError('--stop must not be empty')
  const json = values.json === true
  const chat = values.chat === true

  const run = async (tokenizer: Tokenizer, defaults: GenerationDefaults, contextLength: number, loadMs: number,
    makeRunner: (maxLength: number) => Promise<{ runner: Runner, close: () => Promise<void> }>): Promise<void> => {
    if (contextFlag !== undefined && contextFlag > contextLength) {
      throw new UsageError(`--context ${contextFlag} exceeds the model's context length of ${contextLength} tokens`)
    }
    const promptTokens = encodePrompt(tokenizer, prompt, { chat }).length
    const maxLength = contextFlag ?? Math.min(contextLength, promptTokens + maxTokens)
    if (promptTokens > maxLength) {
      throw new ContextOverflowError(`the prompt is ${promptTokens} tokens, longer than the context of ${maxLength} tokens`)
    }
    const { runner, close } = await makeRunner(maxLength)
    try {
      const result = await runGeneration(runner, tokenizer, prompt, {
        maxTokens,
        temperature: temperatureFlag ?? defaults.temperature ?? DEFAULT_TEMPERATURE,
        topK: topKFlag ?? defaults.topK ?? DEFAULT_TOP_K,
        topP: topPFlag ?? defaults.topP ?? DEFAULT_TOP_P,
        repetitionPenalty: penaltyFlag ?? defaults.repetitionPenalty ?? DEFAULT_REPETITION_PENALTY,
        seed,
        stop,
        chat,
        signal: ctx.signal,
        onText: json ? undefined : piece => ctx.stdout(piece)
      })
      result.timings = { loadMs, ...result.timings }
      if (json) {
        ctx.stdout(JSON.stringify(result) + '\n')
      } else {
        ctx.stdout('\n')
        const t = result.timings
        ctx.stderr(`[${result.promptTokens} prompt tokens, ${result.tokens.length} generated (${result.finishReason}); ` +
          `load ${t.loadMs?.toFixed(0)} ms, prefill ${t.prefillTokensPerSecond.toFixed(1)} tok/s, decode ${t.decodeTokensPerSecond.toFixed(1)} tok/s]\n`)
      }
    } finally {
      await close()
    }
  }

  if (target === 'swarm') {
    const started = performance.now()
    await withSwarmModel(values, modelPath, ctx, async model => {
      await run(model.tokenizer, model.generation, model.config.contextLength, performance.now() - started, async maxLength => {
        const session = await model.inferenceSession({ maxLength, signal: ctx.signal, ...sessionFlagsOf(values) })
        return { runner: model.runner(session, ctx.signal), close: async () => { await session.close() } }
      })
    }, { backend, threads })
    return
  }
  const { source, tokenizer, model, loadMs } = await loadLocalModel(modelPath, { signal: ctx.signal, threads, backend })
  try {
    await run(tokenizer, source.generation, model.config.contextLength, loadMs, async maxLength => {
      const session = model.createSession(maxLength)
      const runner: Runner = { maxLength, forward: async tokens => await session.forwardAsync(tokens, { signal: ctx.signal }) }
      return { runner, close: async () => { session.dispose() } }
    })
  } finally {
    await source.close()
  }
}
