/** A tokenizer model, pre-tokenizer or file layout this package does not implement. */
export class UnsupportedTokenizerError extends Error {
  override name = 'UnsupportedTokenizerError'
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}

/** Tokenizer metadata that is missing or inconsistent (no tokens, a byte token missing, bad special token id...). */
export class InvalidVocabError extends Error {
  override name = 'InvalidVocabError'
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}

/** `applyChatTemplate` on a model whose files declare no chat template. */
export class MissingChatTemplateError extends Error {
  override name = 'MissingChatTemplateError'
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}
