/**
 * @swarm/client: the SDK of the swarm. `Swarm.connect` joins the swarm; `swarm.model(path)` loads the model's
 * embeddings, final norm and LM head and finds servers for its blocks; `model.generate` streams text; a
 * `LocalSession` of @swarm/kernels plugs into the same generation loop for a run in one process.
 *
 * @example
 * ```ts
 * import { Swarm } from '@swarm/client'
 *
 * const swarm = await Swarm.connect({ bootstrap: ['/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW...'] })
 * const model = await swarm.model('model.gguf')
 * for await (const piece of model.generate('The capital of France is', { maxTokens: 32 })) process.stdout.write(piece)
 *
 * const session = await model.inferenceSession({ maxLength: 64, onReroute: e => console.error(e) })
 * const hidden = await session.step(model.head.embed([1, 2, 3]), 3)   // drive the blocks yourself
 * await session.close()
 * await swarm.close()
 * ```
 */
export {
  generate, runGeneration, encodePrompt, DEFAULT_MAX_TOKENS,
  type Runner, type GenerateOptions, type GenerationResult, type GenerationTimings, type FinishReason
} from './generate.js'
export { TextStream } from './text-stream.js'
export {
  ContextOverflowError, EmptyPromptError, InvalidGenerationOptionError, MissingBlocksError, SpanFailedError,
  RetriesExhaustedError, ClosedError, PeerUnresponsiveError
} from './errors.js'
export { extendVocab } from './vocab-extend.js'
export { Swarm, type ConnectOptions, type ModelOptions } from './swarm.js'
export { RemoteModel, type SessionOptions } from './remote-model.js'
export {
  InferenceSession, DEFAULT_RETRY_POLICY, type RetryPolicy, type RerouteEvent, type InferenceSessionOptions
} from './inference-session.js'
export { ModelView, DEFAULT_BAN_POLICY, type BanPolicy } from './model-view.js'
export { findRoute, missingBlocks, serverViewOf, type ServerView, type Span, type RouteOptions } from './routing.js'
