/**
 * Tokenizers: GGUF vocabularies with llama.cpp's exact algorithms (SentencePiece-style 'llama', byte-level BPE
 * 'gpt2'), Hugging Face tokenizer.json, chat templates, and vocabulary conversions for the GGUF writer and fixtures.
 *
 * @example
 * ```ts
 * const tokenizer = await loadTokenizer(source)          // or new GgufTokenizer(syntheticVocab())
 * const ids = tokenizer.encode('Hello world')              // [BOS, ...] as the model's files ask
 * tokenizer.decode(ids)                                    // ' Hello world' is llama.cpp's detokenize of [BOS, ...]
 * tokenizer.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true })
 * ```
 */
export { loadTokenizer } from './load.js'
export { GgufTokenizer } from './gguf-tokenizer.js'
export { HfJsonTokenizer, specialsFromHfConfig } from './hf-tokenizer.js'
export { renderChatTemplate } from './chat-template.js'
export type { ChatTemplateVariables } from './chat-template.js'
export { bpePreTokenizer, preTokenize, SUPPORTED_PRE_TOKENIZERS } from './pretokenize.js'
export type { BpePreTokenizer } from './pretokenize.js'
export {
  ggufVocabMetadata, ggufVocabFromMetadata, ggufVocabFromTokenizerJson, syntheticVocab, tokenizerJsonFromVocab, TOKEN_TYPE
} from './vocab.js'
export { InvalidVocabError, MissingChatTemplateError, UnsupportedTokenizerError } from './errors.js'
