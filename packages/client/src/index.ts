/**
 * @swarm/client: the SDK of the swarm. For now it runs generation over any `Runner` - a `LocalSession` of
 * `@swarm/kernels` runs the whole model in this process; the swarm client session will plug in the same way.
 *
 * @example
 * ```ts
 * import { LocalModel, loadTokenizer, openModel } from '@swarm/kernels'
 * import { generate } from '@swarm/client'
 *
 * const source = await openModel('model.gguf')
 * const tokenizer = await loadTokenizer(source)
 * const model = await LocalModel.load(source)
 * const generation = generate(model.createSession(512), tokenizer, 'The capital of France is', { maxTokens: 32 })
 * for (;;) {
 *   const step = await generation.next()
 *   if (step.done === true) { console.log(step.value.timings); break }  // the GenerationResult
 *   process.stdout.write(step.value)                                  // text pieces as they are produced
 * }
 * ```
 */
export {
  generate, runGeneration, encodePrompt, DEFAULT_MAX_TOKENS,
  type Runner, type GenerateOptions, type GenerationResult, type GenerationTimings, type FinishReason
} from './generate.js'
export { TextStream } from './text-stream.js'
export { ContextOverflowError, EmptyPromptError, InvalidGenerationOptionError } from './errors.js'
export { extendVocab } from './vocab-extend.js'
