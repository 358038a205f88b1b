/** A model whose blocks run in the swarm: the client holds the tokenizer, embeddings, final norm and LM head. */
import type { GenerationDefaults, ModelConfig, ModelHead, Tokenizer } from '@swarm/kernels'
import type { SwarmHost } from '@swarm/protocol'
import { ClosedError } from './errors.js'
import { encodePrompt, generate, type GenerateOptions, type GenerationResult, type Runner } from './generate.js'
import { InferenceSession, type InferenceSessionOptions } from './inference-session.js'
import type { ModelView } from './model-view.js'

export type SessionOptions = Partial<InferenceSessionOptions>

export class RemoteModel {
  readonly modelId: string
  readonly config: ModelConfig
  private readonly sessions = new Set<InferenceSession>()
  private closed = false

  constructor (
    private readonly host: SwarmHost,
    readonly view: ModelView,
    readonly head: ModelHead,
    readonly tokenizer: Tokenizer,
    readonly generation: GenerationDefaults,
    private readonly log: (message: string) => void,
    private readonly onClose: () => void
  ) {
    this.modelId = view.modelId
    this.config = head.config
  }

  /** Opens a route through the swarm for one sequence of at most `maxLength` positions. */
  async inferenceSession (options: SessionOptions = {}): Promise<InferenceSession> {
    if (this.closed) throw new ClosedError('the model is closed')
    const maxLength = options.maxLength ?? this.config.contextLength
    if (!Number.isInteger(maxLength) || maxLength < 1 || maxLength > this.config.contextLength) {
      throw new RangeError(`maxLength must be an integer in [1, ${this.config.contextLength}], got ${maxLength}`)
    }
    const session = await InferenceSession.open(this.host, this.view, this.config.dim, { log: this.log, ...options, maxLength })
    this.sessions.add(session)
    const close = session.close.bind(session)
    session.close = async () => { this.sessions.delete(session); await close() }
    return session
  }

  /** A Runner for the generation loop: token ids -> embeddings -> swarm -> LM head -> logits of the last position. */
  runner (session: InferenceSession, signal?: AbortSignal): Runner {
    return {
      maxLength: session.maxLength,
      forward: async (tokens: number[]) => {
        const hidden = await session.step(this.head.embed(tokens), tokens.length, { signal })
        const last = hidden.subarray((tokens.length - 1) * this.config.dim)
        return this.head.logits(last, 1)
      }
    }
  }

  /**
   * Streams generated text pieces; the generator's return value is the whole result. Sampling options as for a
   * local run; `maxLength` sizes the servers' caches (default: prompt + maxTokens, within the context).
   */
  async * generate (prompt: string, options: GenerateOptions & SessionOptions = {}): AsyncGenerator<string, GenerationResult, undefined> {
    const promptTokens = encodePrompt(this.tokenizer, prompt, options).length
    const maxLength = options.maxLength ?? Math.min(this.config.contextLength, promptTokens + (options.maxTokens ?? 128) + 8)
    const session = await this.inferenceSession({ ...options, maxLength })
    try {
      return yield * generate(this.runner(session, options.signal), this.tokenizer, prompt, options)
    } finally {
      await session.close()
    }
  }

  /** Logits [T, vocab] of every position of `tokens`, run from position 0 in one step. */
  async logits (tokens: number[], options: SessionOptions = {}): Promise<Float32Array> {
    const session = await this.inferenceSession({ ...options, maxLength: Math.max(1, tokens.length) })
    try {
      const hidden = await session.step(this.head.embed(tokens), tokens.length, { signal: options.signal })
      return this.head.logits(hidden, tokens.length)
    } finally {
      await session.close()
    }
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.all([...this.sessions].map(async s => { await s.close() }))
    this.onClose()
  }
}
