import { MAX_ERROR_MESSAGE_LENGTH, MAX_FRAME_BYTES, MAX_PUSH_TOKENS, MAX_SESSION_LENGTH } from './constants.js'
import { type BlockRange, expectBlockRange, expectModelId, expectSessionId } from './common.js'
import { errorToWire, InvalidTensorError, MalformedMessageError } from './errors.js'
import { expectPeerId } from './info.js'
import { expectBoolean, expectInt, expectObject, expectOneOf, expectString, field, type Fields, optional } from './fields.js'
import { packValue, unpackValue } from './msgpack.js'
import { type TensorLimits, validateWireTensor, WIRE_DTYPES, type WireDtype, type WireTensor } from './tensor.js'

// Inference session protocol (INFERENCE_PROTOCOL), one stream per span session:
//   client -> node: open, then step* (each answered by result or error), then close
//   node -> client: opened | result | error
// Push protocol (PUSH_PROTOCOL), one-way node -> node: push* (see PushMessage).
// Forward compatibility: unknown extra fields are tolerated and dropped; known fields of the wrong type or out of
// bounds, and unknown `type`s, are rejected. Parsed messages are fresh objects holding only known fields.

/** Opens a span session: the node allocates KV cache for maxLength tokens of blocks [start, end). */
export interface OpenMessage {
  type: 'open'
  /** 16 random bytes, hex (newSessionId()). */
  sessionId: string
  modelId: string
  blocks: BlockRange
  /** Most tokens this session will ever hold (prompt + generated); the node reserves this much cache. */
  maxLength: number
  /** dtype the node should send results in; default: the dtype of each step's input. */
  dtype?: WireDtype
}

/** One forward step through the span. */
export interface StepMessage {
  type: 'step'
  /** Monotonic per session, starting at 0; echoed in the result or error. */
  stepId: number
  /**
   * Hidden states [T, hidden] or [B, T, hidden], T >= 1. Exactly one of `hidden` and `pushedTokens` is set.
   */
  hidden?: WireTensor
  /**
   * The step's input is the output of the previous span, which `prev` pushed here ([pushedTokens, hidden], at most
   * MAX_PUSH_TOKENS): the client sends this instead of `hidden` when `prev`'s result said `pushed` and this node's
   * `opened` said `takesPushedInput`. The node runs the push it holds or waits PUSH_WAIT_MS for it, then answers
   * push-missing (the client sends the step again with `hidden`). Needs `prev`; not with `startFrom`.
   */
  pushedTokens?: number
  /** Absolute position of the first of the T tokens; must equal the session's cache length (after startFrom). */
  position: number
  /**
   * Rewind the KV cache to this many tokens before the step (replay, regeneration). Must equal `position`:
   * without it a step behind the cache is an out-of-order error, so a duplicated step is never applied twice.
   */
  startFrom?: number
  /**
   * Server of the span after this one: when the step has at most MAX_PUSH_TOKENS tokens and no startFrom, the node
   * also pushes its output there (PUSH_PROTOCOL), so that server can start before the client's step reaches it.
   */
  next?: string
  /**
   * Server of the span before this one: the only peer whose push this session runs ahead of the client, for its next
   * step. A pushed step is answered on this stream as step lastStepId + 1; when the client's step for it arrives (same
   * stepId, position and length, with its input or with pushedTokens), it gets no second answer.
   */
  prev?: string
}

/** Ends the session; the node frees its cache and closes the stream. */
export interface CloseMessage {
  type: 'close'
}

export type ClientMessage = OpenMessage | StepMessage | CloseMessage

/** Session accepted. */
export interface OpenedMessage {
  type: 'opened'
  sessionId: string
  /** Cache tokens the node still has free after this reservation. */
  cacheTokensLeft: number
  /** The node takes steps whose input comes as a push (StepMessage.pushedTokens); absent on nodes that do not. */
  takesPushedInput?: boolean
}

/** Output hidden states of one step, same shape as its input. */
export interface ResultMessage {
  type: 'result'
  stepId: number
  hidden: WireTensor
  /** The node also pushed this output to the step's `next` (it left before this result). */
  pushed?: boolean
}

/** A typed failure; the stream stays usable unless the node closes it. */
export interface ErrorMessage {
  type: 'error'
  /** An ErrorCode; unknown codes from newer peers map to InternalError in errorFromWire. */
  code: string
  message: string
  /** The step that failed, when the error answers a step. */
  stepId?: number
}

export type NodeMessage = OpenedMessage | ResultMessage | ErrorMessage

/**
 * Node -> node: the output of a step of session `sessionId`, which is the input of the receiver's span at `position`.
 * No answer: the receiver runs it at once when it comes from the session's `prev` peer and fits the session's cache
 * exactly; otherwise it holds it (the latest one per session) until the client's step names its sender and position
 * (StepMessage.pushedTokens); a held push the session has moved past never runs.
 */
export interface PushMessage {
  type: 'push'
  sessionId: string
  position: number
  hidden: WireTensor
}

export interface MessageLimits extends TensorLimits {
  /** Largest frame, bytes (default MAX_FRAME_BYTES). */
  maxFrameBytes?: number
}

const CLIENT_TYPES = ['open', 'step', 'close'] as const
const NODE_TYPES = ['opened', 'result', 'error'] as const
const PUSH_TYPES = ['push'] as const
const ERROR_CODE_PATTERN = /^[a-z][a-z0-9-]*$/

/** Decodes and validates a client -> node frame. Throws MalformedMessageError, FrameTooLargeError or InvalidTensorError. */
export function parseClientMessage (bytes: Uint8Array, limits: MessageLimits = {}): ClientMessage {
  return validateClientMessage(unpackValue(bytes, { maxBytes: limits.maxFrameBytes }), limits)
}

/** Decodes and validates a node -> client frame. */
export function parseNodeMessage (bytes: Uint8Array, limits: MessageLimits = {}): NodeMessage {
  return validateNodeMessage(unpackValue(bytes, { maxBytes: limits.maxFrameBytes }), limits)
}

/** Decodes and validates a node -> node push frame. */
export function parsePushMessage (bytes: Uint8Array, limits: MessageLimits = {}): PushMessage {
  return validatePushMessage(unpackValue(bytes, { maxBytes: limits.maxFrameBytes }), limits)
}

/** Validates and encodes a node -> node push. */
export function encodePushMessage (message: PushMessage, limits: MessageLimits = {}): Uint8Array {
  return packValue(validatePushMessage(message, limits), limits.maxFrameBytes ?? MAX_FRAME_BYTES)
}

export function validatePushMessage (value: unknown, limits: TensorLimits = {}): PushMessage {
  const obj = expectObject(value, 'message')
  expectOneOf(field(obj, 'type'), 'message.type', PUSH_TYPES)
  return {
    type: 'push',
    sessionId: expectSessionId(field(obj, 'sessionId'), 'push.sessionId'),
    position: expectInt(field(obj, 'position'), 'push.position', 0, MAX_SESSION_LENGTH),
    hidden: validateHidden(field(obj, 'hidden'), 'push.hidden', limits)
  }
}

/** Validates and encodes a client -> node message. */
export function encodeClientMessage (message: ClientMessage, limits: MessageLimits = {}): Uint8Array {
  return packValue(validateClientMessage(message, limits), limits.maxFrameBytes ?? MAX_FRAME_BYTES)
}

/** Validates and encodes a node -> client message. */
export function encodeNodeMessage (message: NodeMessage, limits: MessageLimits = {}): Uint8Array {
  return packValue(validateNodeMessage(message, limits), limits.maxFrameBytes ?? MAX_FRAME_BYTES)
}

/** The error message for any thrown value (typed errors keep their code). */
export function errorMessage (err: unknown, stepId?: number): ErrorMessage {
  const wire = errorToWire(err)
  return stepId === undefined ? { type: 'error', ...wire } : { type: 'error', ...wire, stepId }
}

export function validateClientMessage (value: unknown, limits: TensorLimits = {}): ClientMessage {
  const obj = expectObject(value, 'message')
  const type = expectOneOf(field(obj, 'type'), 'message.type', CLIENT_TYPES)
  switch (type) {
    case 'open': return validateOpen(obj)
    case 'step': return validateStep(obj, limits)
    case 'close': return { type: 'close' }
  }
}

export function validateNodeMessage (value: unknown, limits: TensorLimits = {}): NodeMessage {
  const obj = expectObject(value, 'message')
  const type = expectOneOf(field(obj, 'type'), 'message.type', NODE_TYPES)
  switch (type) {
    case 'opened': {
      const message: OpenedMessage = {
        type,
        sessionId: expectSessionId(field(obj, 'sessionId'), 'opened.sessionId'),
        cacheTokensLeft: expectInt(field(obj, 'cacheTokensLeft'), 'opened.cacheTokensLeft', 0)
      }
      const takes = optional(field(obj, 'takesPushedInput'), v => expectBoolean(v, 'opened.takesPushedInput'))
      if (takes !== undefined) message.takesPushedInput = takes
      return message
    }
    case 'result': {
      const message: ResultMessage = {
        type,
        stepId: expectInt(field(obj, 'stepId'), 'result.stepId', 0),
        hidden: validateHidden(field(obj, 'hidden'), 'result.hidden', limits)
      }
      const pushed = optional(field(obj, 'pushed'), v => expectBoolean(v, 'result.pushed'))
      if (pushed !== undefined) message.pushed = pushed
      return message
    }
    case 'error': {
      const message: ErrorMessage = {
        type,
        code: expectString(field(obj, 'code'), 'error.code', 64, ERROR_CODE_PATTERN),
        message: expectString(field(obj, 'message'), 'error.message', MAX_ERROR_MESSAGE_LENGTH)
      }
      const stepId = optional(field(obj, 'stepId'), v => expectInt(v, 'error.stepId', 0))
      if (stepId !== undefined) message.stepId = stepId
      return message
    }
  }
}

function validateOpen (obj: Fields): OpenMessage {
  const message: OpenMessage = {
    type: 'open',
    sessionId: expectSessionId(field(obj, 'sessionId'), 'open.sessionId'),
    modelId: expectModelId(field(obj, 'modelId'), 'open.modelId'),
    blocks: expectBlockRange(field(obj, 'blocks'), 'open.blocks'),
    maxLength: expectInt(field(obj, 'maxLength'), 'open.maxLength', 1, MAX_SESSION_LENGTH)
  }
  const dtype = optional(field(obj, 'dtype'), v => expectOneOf(v, 'open.dtype', WIRE_DTYPES))
  if (dtype !== undefined) message.dtype = dtype
  return message
}

function validateStep (obj: Fields, limits: TensorLimits): StepMessage {
  const message: StepMessage = {
    type: 'step',
    stepId: expectInt(field(obj, 'stepId'), 'step.stepId', 0),
    position: expectInt(field(obj, 'position'), 'step.position', 0, MAX_SESSION_LENGTH)
  }
  const hidden = optional(field(obj, 'hidden'), v => validateHidden(v, 'step.hidden', limits))
  const pushedTokens = optional(field(obj, 'pushedTokens'), v => expectInt(v, 'step.pushedTokens', 1, MAX_PUSH_TOKENS))
  if ((hidden === undefined) === (pushedTokens === undefined)) {
    throw new MalformedMessageError('a step carries either hidden or pushedTokens')
  }
  if (hidden !== undefined) message.hidden = hidden
  if (pushedTokens !== undefined) message.pushedTokens = pushedTokens
  const startFrom = optional(field(obj, 'startFrom'), v => expectInt(v, 'step.startFrom', 0, MAX_SESSION_LENGTH))
  if (startFrom !== undefined) {
    if (startFrom !== message.position) {
      throw new MalformedMessageError(`step.startFrom ${startFrom} differs from step.position ${message.position}`)
    }
    message.startFrom = startFrom
  }
  const next = optional(field(obj, 'next'), v => expectPeerId(v, 'step.next'))
  if (next !== undefined) message.next = next
  const prev = optional(field(obj, 'prev'), v => expectPeerId(v, 'step.prev'))
  if (prev !== undefined) message.prev = prev
  if (pushedTokens !== undefined) {
    if (prev === undefined) throw new MalformedMessageError('a step with pushedTokens must name prev')
    if (startFrom !== undefined) throw new MalformedMessageError('a step with pushedTokens cannot have startFrom')
  }
  return message
}

/** Hidden states: rank 2 [T, hidden] or 3 [B, T, hidden], every dimension >= 1. */
function validateHidden (value: unknown, path: string, limits: TensorLimits): WireTensor {
  let tensor: WireTensor
  try {
    tensor = validateWireTensor(value, limits)
  } catch (err) {
    throw new InvalidTensorError(`${path}: ${(err as Error).message}`, { cause: err })
  }
  const { shape } = tensor
  if (shape.length !== 2 && shape.length !== 3) {
    throw new InvalidTensorError(`${path} must be [T, hidden] or [B, T, hidden], got [${shape.join(', ')}]`)
  }
  if (shape.some(d => d === 0)) throw new InvalidTensorError(`${path} has an empty dimension: [${shape.join(', ')}]`)
  return tensor
}
