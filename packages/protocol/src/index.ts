/**
 * @swarm/protocol: protocol ids, wire message schemas with validation, wire tensors, typed errors, and the signed
 * DHT records of the swarm. Node and client share nothing but this package.
 *
 * Every frame is size-checked and structurally scanned (depth, container lengths, no extension types but typed
 * arrays) before msgpack decoding, then validated field by field. Forward compatibility: unknown extra fields are
 * tolerated and dropped, known fields with a wrong type or out of bounds and unknown `type`s are rejected; every
 * failure is a typed error (errors.ts) whose `code` travels on the wire.
 *
 * @example
 * ```ts
 * import {
 *   INFERENCE_PROTOCOL, MAX_FRAME_BYTES, newSessionId, encodeClientMessage, parseNodeMessage, encodeTensor,
 *   decodeTensor, errorFromWire, recordKey, signRecord, recordValidators, recordSelectors
 * } from '@swarm/protocol'
 *
 * // client side of one span session (frames go through lpStream(stream, { maxDataLength: MAX_FRAME_BYTES }))
 * const open = encodeClientMessage({ type: 'open', sessionId: newSessionId(), modelId, blocks: [0, 8], maxLength: 512 })
 * const step = encodeClientMessage({ type: 'step', stepId: 0, position: 0, hidden: encodeTensor(hidden, [T, H], 'f16') })
 * const reply = parseNodeMessage(frame)              // throws MalformedMessageError & co on bad input
 * if (reply.type === 'error') throw errorFromWire(reply)
 * if (reply.type === 'result') { const { data, shape } = decodeTensor(reply.hidden) }
 *
 * // node side: announce blocks on the private DHT (kadDHT({ protocol: DHT_PROTOCOL, validators: recordValidators,
 * // selectors: recordSelectors }))
 * await dht.put(recordKey(modelId, peerId), await signRecord(record, privateKey))
 * ```
 */
export * from './constants.js'
export * from './errors.js'
export { Deadline } from './deadline.js'
export { type BlockRange, type Throughput, MODEL_ID_PATTERN, SESSION_ID_PATTERN, newSessionId } from './common.js'
export { type MsgpackLimits, packValue, unpackValue, scanMsgpack } from './msgpack.js'
export { float32ToF16, f16ToFloat32, float32ToBf16, bf16ToFloat32, roundToF16, roundToBf16 } from './float16.js'
export {
  type WireDtype, type WireTensor, type Tensor, type TensorLimits, type DecodeTensorOptions, WIRE_DTYPES, DTYPE_BYTES,
  shapeSize, encodeTensor, decodeTensor, validateWireTensor
} from './tensor.js'
export {
  type OpenMessage, type StepMessage, type CloseMessage, type ClientMessage, type OpenedMessage, type ResultMessage,
  type ErrorMessage, type NodeMessage, type PushMessage, type MessageLimits, parseClientMessage, parseNodeMessage,
  parsePushMessage, encodeClientMessage, encodeNodeMessage, encodePushMessage, validateClientMessage,
  validateNodeMessage, validatePushMessage, errorMessage
} from './messages.js'
export {
  type ServerState, type InfoRequestMessage, type PingMessage, type InfoRequest, type InfoMessage, type PongMessage,
  type InfoErrorMessage, type RecordRequestMessage, type RecordMessage, type InfoResponse, type InfoLimits, SERVER_STATES, parseInfoRequest, parseInfoResponse,
  encodeInfoRequest, encodeInfoResponse, validateInfoRequest, validateInfoResponse, isCompatibleVersion,
  assertCompatibleVersion
} from './info.js'
export {
  type SwarmRecord, type RecordValidateFn, type RecordSelectFn, type VerifyRecordOptions, recordKey, parseRecordKey,
  validateRecord, nextRecordSeq, signRecord, decodeRecordValue, verifyRecordValue, selectRecord, recordValidators,
  createRecordValidators,
  recordSelectors
} from './record.js'
export { type WeightsManifestEntry, type ModelIdentity, computeModelId, modelCid, canonicalJson } from './model-id.js'
export { trace } from './trace.js'
export {
  type SwarmHost, type SwarmHostOptions, type SwarmServices, DEFAULT_PING_INTERVAL_MS, createSwarmHost, dialBootstrap,
  stopHost, BootstrapError, parseSwarmKey
} from './host.js'
