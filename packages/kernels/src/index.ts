/**
 * @swarm/kernels: model formats (GGUF, Hugging Face), tokenizers, tensor ops (CPU reference and fast backends)
 * and transformer architectures. No networking.
 *
 * @example
 * ```ts
 * import { openModel, loadTokenizer, LocalModel } from '@swarm/kernels'
 * const source = await openModel('model.gguf')
 * const tokenizer = await loadTokenizer(source)
 * const model = await LocalModel.load(source)
 * const session = model.createSession(256)
 * const logits = session.forward(tokenizer.encode('Hello'))   // [vocab] logits of the last position
 * ```
 */
export * from './types.js'
export * from './tokenizer-types.js'
export * from './backend-types.js'
export * from './quant/index.js'
export * from './formats/index.js'
export * from './fixtures/index.js'
export * from './tokenizer/index.js'
export * from './ops/reference.js'
export * from './backend.js'
export * from './wasm/index.js'
export * from './webgpu/index.js'
export * from './model/index.js'
export * from './sampler.js'
export * from './default-model.js'
