import { MAX_ERROR_MESSAGE_LENGTH } from './constants.js'

/** Every error code that may travel on the wire. One class per code below. */
export type ErrorCode =
  | 'malformed-message'
  | 'frame-too-large'
  | 'unsupported-version'
  | 'unknown-session'
  | 'session-exists'
  | 'busy'
  | 'too-long'
  | 'out-of-order'
  | 'invalid-tensor'
  | 'wrong-model'
  | 'blocks-not-served'
  | 'timeout'
  | 'push-missing'
  | 'invalid-record'
  | 'invalid-signature'
  | 'record-expired'
  | 'internal'

/** Base class of the swarm's typed errors: `code` is what goes on the wire. */
export abstract class SwarmError extends Error {
  abstract readonly code: ErrorCode
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
  }
}

/** A message or value could not be decoded, or a field has the wrong type or is out of bounds. */
export class MalformedMessageError extends SwarmError {
  static readonly code = 'malformed-message'
  readonly code = 'malformed-message'
  override name = 'MalformedMessageError'
}

/** A frame is larger than the agreed maximum. */
export class FrameTooLargeError extends SwarmError {
  static readonly code = 'frame-too-large'
  readonly code = 'frame-too-large'
  override name = 'FrameTooLargeError'
}

/** The peer speaks an incompatible protocol version. */
export class UnsupportedVersionError extends SwarmError {
  static readonly code = 'unsupported-version'
  readonly code = 'unsupported-version'
  override name = 'UnsupportedVersionError'
}

/** A step or close named a session the node does not hold (never opened, closed, or evicted). */
export class UnknownSessionError extends SwarmError {
  static readonly code = 'unknown-session'
  readonly code = 'unknown-session'
  override name = 'UnknownSessionError'
}

/** An open used a session id that is already open on this node. */
export class SessionExistsError extends SwarmError {
  static readonly code = 'session-exists'
  readonly code = 'session-exists'
  override name = 'SessionExistsError'
}

/** The node cannot take this session now: KV cache budget exhausted or too many sessions. Try another peer. */
export class BusyError extends SwarmError {
  static readonly code = 'busy'
  readonly code = 'busy'
  override name = 'BusyError'
}

/** A step would grow the session past the maxLength it was opened with. */
export class TooLongError extends SwarmError {
  static readonly code = 'too-long'
  readonly code = 'too-long'
  override name = 'TooLongError'
}

/** A step's stepId or position does not follow the previous step. */
export class OutOfOrderError extends SwarmError {
  static readonly code = 'out-of-order'
  readonly code = 'out-of-order'
  override name = 'OutOfOrderError'
}

/** A tensor has an unknown dtype, a shape that disagrees with its bytes or with the model, or NaN/Inf values. */
export class InvalidTensorError extends SwarmError {
  static readonly code = 'invalid-tensor'
  readonly code = 'invalid-tensor'
  override name = 'InvalidTensorError'
}

/** The node does not serve this model id. */
export class WrongModelError extends SwarmError {
  static readonly code = 'wrong-model'
  readonly code = 'wrong-model'
  override name = 'WrongModelError'
}

/** The node does not serve the requested block range. */
export class BlocksNotServedError extends SwarmError {
  static readonly code = 'blocks-not-served'
  readonly code = 'blocks-not-served'
  override name = 'BlocksNotServedError'
}

/** A deadline passed. */
export class TimeoutError extends SwarmError {
  static readonly code = 'timeout'
  readonly code = 'timeout'
  override name = 'TimeoutError'
}

/**
 * A step whose input was to come as a push (StepMessage.pushedTokens) waited PUSH_WAIT_MS and the push did not come:
 * the client sends the step again with its hidden states. The session is unchanged.
 */
export class PushMissingError extends SwarmError {
  static readonly code = 'push-missing'
  readonly code = 'push-missing'
  override name = 'PushMissingError'
}

/** A DHT record is malformed, or its key does not match its content. */
export class InvalidRecordError extends SwarmError {
  static readonly code = 'invalid-record'
  readonly code = 'invalid-record'
  override name = 'InvalidRecordError'
}

/** A DHT record's signature does not verify against the public key of its peer id. */
export class InvalidSignatureError extends SwarmError {
  static readonly code = 'invalid-signature'
  readonly code = 'invalid-signature'
  override name = 'InvalidSignatureError'
}

/** A DHT record's expiresAt is in the past (or implausibly far in the future). */
export class RecordExpiredError extends SwarmError {
  static readonly code = 'record-expired'
  readonly code = 'record-expired'
  override name = 'RecordExpiredError'
}

/** Anything else: a bug or an unexpected failure on the remote side. */
export class InternalError extends SwarmError {
  static readonly code = 'internal'
  readonly code = 'internal'
  override name = 'InternalError'
}

type SwarmErrorClass = (new (message: string, options?: ErrorOptions) => SwarmError) & { code: ErrorCode }

const ERROR_CLASSES: readonly SwarmErrorClass[] = [
  MalformedMessageError, FrameTooLargeError, UnsupportedVersionError, UnknownSessionError, SessionExistsError,
  BusyError, TooLongError, OutOfOrderError, InvalidTensorError, WrongModelError, BlocksNotServedError, TimeoutError,
  PushMissingError, InvalidRecordError, InvalidSignatureError, RecordExpiredError, InternalError
]

const CLASS_BY_CODE = new Map<string, SwarmErrorClass>(ERROR_CLASSES.map(c => [c.code, c]))

/** All error codes, for validation. */
export const ERROR_CODES: readonly ErrorCode[] = ERROR_CLASSES.map(c => c.code)

export function isErrorCode (value: unknown): value is ErrorCode {
  return typeof value === 'string' && CLASS_BY_CODE.has(value)
}

/** Wire form of an error. */
export interface WireError {
  code: ErrorCode
  message: string
}

/**
 * The wire form of any thrown value: a SwarmError keeps its code, anything else becomes 'internal'.
 * Messages are truncated to MAX_ERROR_MESSAGE_LENGTH.
 */
export function errorToWire (err: unknown): WireError {
  const code: ErrorCode = err instanceof SwarmError ? err.code : 'internal'
  let message = err instanceof Error ? err.message : String(err)
  if (message.length > MAX_ERROR_MESSAGE_LENGTH) message = message.slice(0, MAX_ERROR_MESSAGE_LENGTH)
  return { code, message }
}

/**
 * The error of the class matching a wire code. An unknown code (a newer peer) becomes an InternalError whose
 * message names the code.
 */
export function errorFromWire (wire: { code: string, message: string }): SwarmError {
  const ErrorClass = CLASS_BY_CODE.get(wire.code)
  if (ErrorClass === undefined) return new InternalError(`remote error ${wire.code}: ${wire.message}`)
  return new ErrorClass(wire.message)
}
