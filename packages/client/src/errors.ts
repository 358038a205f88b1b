/** Errors of the client, one class per failure mode (see CONVENTIONS.md 4). */

/** A generation option outside its domain (maxTokens, stop strings). */
export class InvalidGenerationOptionError extends RangeError {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'InvalidGenerationOptionError'
  }
}

/** The prompt does not fit the context (the runner's maxLength). Raised before any compute. */
export class ContextOverflowError extends RangeError {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'ContextOverflowError'
  }
}

/** The prompt encodes to no token at all, so there is nothing to condition on. */
export class EmptyPromptError extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'EmptyPromptError'
  }
}
