/** A GGML type number (or dtype) this package does not read or write. */
export class UnsupportedDTypeError extends Error {
  override name = 'UnsupportedDTypeError'
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}

/** A row length that is not a whole number of blocks of its dtype, or a buffer too short for the rows asked for. */
export class QuantLayoutError extends Error {
  override name = 'QuantLayoutError'
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}
