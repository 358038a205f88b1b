/** A model file whose bytes do not follow its format (bad magic, truncated, offsets outside the file, bad JSON). */
export class CorruptModelFileError extends Error {
  override name = 'CorruptModelFileError'
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}

/** A well-formed model this package does not run (architecture, RoPE variant, format version). */
export class UnsupportedModelError extends Error {
  override name = 'UnsupportedModelError'
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}

/** A tensor name the model does not have. */
export class UnknownTensorError extends Error {
  override name = 'UnknownTensorError'
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}

/** A path that is neither a GGUF file nor a Hugging Face model directory, or does not exist. */
export class ModelNotFoundError extends Error {
  override name = 'ModelNotFoundError'
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}
