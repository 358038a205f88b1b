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

/** No server in the swarm covers some blocks of the model; `missing` lists them as [start, end) ranges. */
export class MissingBlocksError extends Error {
  readonly missing: Array<[number, number]>
  constructor (message: string, missing: Array<[number, number]>, options?: ErrorOptions) {
    super(message, options)
    this.name = 'MissingBlocksError'
    this.missing = missing
  }
}

/** A server of a route failed (stream error, EOF, deadline, typed error from the node). */
export class SpanFailedError extends Error {
  readonly peerId: string
  constructor (message: string, peerId: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'SpanFailedError'
    this.peerId = peerId
  }
}

/** A server did not answer a ping in time while the client waited on it (it hung); the cause of a SpanFailedError. */
export class PeerUnresponsiveError extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'PeerUnresponsiveError'
  }
}

/** Failover gave up: the retry policy was exhausted. */
export class RetriesExhaustedError extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'RetriesExhaustedError'
  }
}

/** A session or model was used after close(). */
export class ClosedError extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'ClosedError'
  }
}
