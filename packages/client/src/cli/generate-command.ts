/** `swarm generate`: text generation, in this process (--local); the swarm path comes with --bootstrap later. */
import { ContextOverflowError } from '../errors.js'
import { DEFAULT_MAX_TOKENS, encodePrompt, runGeneration } from '../generate.js'
import { integerFlag, numberFlag, parseFlags, requireString, UsageError } from './args.js'
import { loadLocalModel } from './model.js'
import type { CommandContext } from './context.js'

/** sampling defaults when the model files declare none: greedy, with top-k/top-p ready for --temperature > 0 */
export const DEFAULT_TEMPERATURE = 0
export const DEFAULT_TOP_K = 40
export const DEFAULT_TOP_P = 0.95
export const DEFAULT_REPETITION_PENALTY = 1

export const generateHelp = `Usage: swarm generate --local --model PATH --prompt TEXT [options]

Generates text after a prompt and streams it to stdout.

Options:
  --local                   run the whole model in this process (required for now: generating over the swarm
                            needs --bootstrap, which is not implemented yet)
  --model PATH              GGUF file or Hugging Face model directory
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
    json: { type: 'boolean' }
  })
  if (values.help === true) {
    ctx.stdout(generateHelp)
    return
  }
  if (values.local !== true) {
    throw new UsageError('generating over the swarm needs --bootstrap <multiaddr>, which is not implemented yet; use --local to run the model in this process')
  }
  const modelPath = requireString(values, 'model')
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
  const stop = (values.stop as string[] | undefined) ?? []
  if (stop.some(s => s.length === 0)) throw new UsageError('--stop must not be empty')
  const json = values.json === true
  const chat = values.chat === true

  const { source, tokenizer, model, loadMs } = await loadLocalModel(modelPath, { signal: ctx.signal, threads })
  try {
    const { contextLength } = model.config
    if (contextFlag !== undefined && contextFlag > contextLength) {
      throw new UsageError(`--context ${contextFlag} exceeds the model's context length of ${contextLength} tokens`)
    }
    const promptTokens = encodePrompt(tokenizer, prompt, { chat }).length
    const maxLength = contextFlag ?? Math.min(contextLength, promptTokens + maxTokens)
    if (promptTokens > maxLength) {
      throw new ContextOverflowError(`the prompt is ${promptTokens} tokens, longer than the context of ${maxLength} tokens`)
    }
    const session = model.createSession(maxLength)
    const defaults = source.generation
    const result = await runGeneration(session, tokenizer, prompt, {
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
    await source.close()
  }
}
