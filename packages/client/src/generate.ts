/**
 * The generation loop, independent of where the transformer runs: a `LocalSession` (one process) and the swarm
 * client's session plug in through the same two-member `Runner` interface.
 */
import { createSampler, type SamplerOptions, type Tokenizer } from '@swarm/kernels'
import { ContextOverflowError, EmptyPromptError, InvalidGenerationOptionError } from './errors.js'
import { TextStream } from './text-stream.js'

/** Something that turns token ids into next-token logits, keeping its own position (KV cache). */
export interface Runner {
  /** runs `tokens` from the current position; returns the logits [vocab] of the last one */
  forward: (tokens: number[]) => Float32Array | Promise<Float32Array>
  /** the most positions (prompt + generated) the runner can hold */
  maxLength: number
}

export interface GenerateOptions extends SamplerOptions {
  /** the most tokens to generate (default 128); generation also ends at EOS, a stop string or the runner's maxLength */
  maxTokens?: number
  /** generation ends when the text contains one of these; the stop string itself is not part of the output */
  stop?: string[]
  /** render the prompt as one user message through the model's chat template (with the generation prompt) */
  chat?: boolean
  signal?: AbortSignal
}

export interface GenerationTimings {
  /** model load time, filled in by whoever loaded the model (the CLI); absent otherwise */
  loadMs?: number
  /** time of the prompt's forward pass and the first sampling */
  prefillMs: number
  /** time of the decode steps (one forward pass + sampling per generated token after the first) */
  decodeMs: number
  prefillTokensPerSecond: number
  /** decode steps per second; 0 when there was no decode step */
  decodeTokensPerSecond: number
}

/** why generation ended: an EOS id, a stop string, the maxTokens budget, or the runner's maxLength */
export type FinishReason = 'eos' | 'stop' | 'maxTokens' | 'length'

export interface GenerationResult {
  /** every sampled id, in order, including a final EOS id when generation ended on one */
  tokens: number[]
  /** the generated text, cut before a stop string */
  text: string
  /** number of prompt tokens (after the chat template and special tokens) */
  promptTokens: number
  finishReason: FinishReason
  timings: GenerationTimings
}

export const DEFAULT_MAX_TOKENS = 128

/** The prompt's token ids as `generate` feeds them to the model. */
export function encodePrompt (tokenizer: Tokenizer, prompt: string, options: { chat?: boolean } = {}): number[] {
  if (options.chat !== true) return tokenizer.encode(prompt)
  const text = tokenizer.applyChatTemplate([{ role: 'user', content: prompt }], { addGenerationPrompt: true })
  const ids = tokenizer.encode(text, { parseSpecial: true })
  // Templates that write the BOS themselves would get a second one from the tokenizer's add-BOS rule
  const bos = tokenizer.specials.bosTokenId
  if (bos !== undefined && ids.length >= 2 && ids[0] === bos && ids[1] === bos) ids.shift()
  return ids
}

function validate (options: GenerateOptions): { maxTokens: number, stop: string[] } {
  const maxTokens = options.maxTokens ?? DEFAULT_MAX_TOKENS
  if (!Number.isSafeInteger(maxTokens) || maxTokens < 1) {
    throw new InvalidGenerationOptionError(`maxTokens must be an integer >= 1, got ${String(options.maxTokens)}`)
  }
  const stop = options.stop ?? []
  if (!Array.isArray(stop) || stop.some(s => typeof s !== 'string' || s.length === 0)) {
    throw new InvalidGenerationOptionError('stop strings must be non-empty strings')
  }
  return { maxTokens, stop }
}

/**
 * Generates text after `prompt`, yielding text pieces as soon as they are stable (never half a UTF-8 character,
 * never a part of a stop string); the generator's return value is the whole result.
 * Use `runGeneration` for a promise of the result.
 */
export async function * generate (runner: Runner, tokenizer: Tokenizer, prompt: string, options: GenerateOptions = {}): AsyncGenerator<string, GenerationResult, undefined> {
  const { maxTokens, stop } = validate(options)
  const sampler = createSampler(options)
  const { signal } = options
  signal?.throwIfAborted()

  const promptIds = encodePrompt(tokenizer, prompt, options)
  if (promptIds.length === 0) throw new EmptyPromptError('the prompt encodes to no tokens (and the model adds no BOS)')
  if (promptIds.length > runner.maxLength) {
    throw new ContextOverflowError(`the prompt is ${promptIds.length} tokens, longer than the context of ${runner.maxLength} tokens`)
  }
  const eos = new Set(tokenizer.specials.eosTokenIds)
  if (tokenizer.specials.eosTokenId !== undefined) eos.add(tokenizer.specials.eosTokenId)

  const history = promptIds.slice()
  const tokens: number[] = []
  const stream = new TextStream(tokenizer, promptIds, stop)
  let finishReason: FinishReason = 'maxTokens'

  let started = performance.now()
  let logits = await runner.forward(promptIds)
  let next = sampler.sample(logits, history)
  const prefillMs = performance.now() - started
  let decodeMs = 0
  let decodeSteps = 0

  for (;;) {
    tokens.push(next)
    history.push(next)
    if (eos.has(next)) {
      finishReason = 'eos'
      break
    }
    const piece = stream.push(next)
    if (piece.length > 0) yield piece
    if (stream.stopped) {
      finishReason = 'stop'
      break
    }
    if (tokens.length >= maxTokens) break
    if (history.length > runner.maxLength) { // forwarding `next` would take the runner past its last position
      finishReason = 'length'
      break
    }
    signal?.throwIfAborted()
    started = performance.now()
    logits = await runner.forward([next])
    next = sampler.sample(logits, history)
    decodeMs += performance.now() - started
    decodeSteps++
  }
  const rest = stream.finish()
  if (rest.length > 0) yield rest

  return {
    tokens,
    text: stream.text,
    promptTokens: promptIds.length,
    finishReason,
    timings: {
      prefillMs,
      decodeMs,
      prefillTokensPerSecond: prefillMs > 0 ? promptIds.length / (prefillMs / 1000) : 0,
      decodeTokensPerSecond: decodeMs > 0 ? decodeSteps / (decodeMs / 1000) : 0
    }
  }
}

/** Runs `generate` to the end, handing each text piece to `onText`; resolves to the result. */
export async function runGeneration (runner: Runner, tokenizer: Tokenizer, prompt: string, options: GenerateOptions & { onText?: (piece: string) => void } = {}): Promise<GenerationResult> {
  const generation = generate(runner, tokenizer, prompt, options)
  for (;;) {
    const step = await generation.next()
    if (step.done === true) return step.value
    options.onText?.(step.value)
  }
}
