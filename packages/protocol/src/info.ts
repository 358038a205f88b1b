import { peerIdFromString } from '@libp2p/peer-id'
import { MAX_ERROR_MESSAGE_LENGTH, MAX_FRAME_BYTES, MAX_RECORD_VALUE_BYTES, MAX_VERSION_LENGTH, PROTOCOL_VERSION } from './constants.js'
import { type BlockRange, expectBlockRange, expectModelId, type Throughput } from './common.js'
import { MalformedMessageError, UnsupportedVersionError } from './errors.js'
import {
  expectBytes, expectInt, expectNumber, expectObject, expectOneOf, expectString, field, type Fields, optional
} from './fields.js'
import { packValue, unpackValue } from './msgpack.js'

// Info protocol (INFO_PROTOCOL): request/response on short-lived streams.
//   info-request -> info            (what the node serves and how loaded it is)
//   ping         -> pong            (RTT; with a payload, throughput: the node echoes `payload` back)
//   record-request -> record        (the node's current signed DHT record of a model, the bytes it announces; clients
//                                    verify it as they verify the DHT's copy, and need no DHT query that a hung peer
//                                    elsewhere in the swarm can stall)
// Same compatibility rule as messages.ts: extra fields tolerated and dropped, wrong types rejected.

/** Node lifecycle, as in its DHT record. */
export type ServerState = 'joining' | 'online' | 'offline'

export const SERVER_STATES: readonly ServerState[] = ['joining', 'online', 'offline']

export interface InfoRequestMessage {
  type: 'info-request'
}

export interface PingMessage {
  type: 'ping'
  /** Echoed in the pong. */
  nonce: number
  /** Optional bytes the node must send back (throughput probes). */
  payload?: Uint8Array
}

export interface RecordRequestMessage {
  type: 'record-request'
  /** the model whose record is asked for */
  modelId: string
}

export type InfoRequest = InfoRequestMessage | PingMessage | RecordRequestMessage

export interface InfoMessage {
  type: 'info'
  peerId: string
  modelId: string
  blocks: BlockRange
  state: ServerState
  throughput: Throughput
  /** Fraction of compute in use, 0..1. */
  load: number
  cacheTokensLeft: number
  /** Protocol version the node speaks (semver). */
  version: string
}

export interface PongMessage {
  type: 'pong'
  nonce: number
  payload?: Uint8Array
}

export interface InfoErrorMessage {
  type: 'error'
  code: string
  message: string
}

export interface RecordMessage {
  type: 'record'
  /** the signed record value (signRecord), as put in the DHT */
  value: Uint8Array
}

export type InfoResponse = InfoMessage | PongMessage | RecordMessage | InfoErrorMessage

export interface InfoLimits {
  /** Largest frame, bytes (default MAX_FRAME_BYTES). */
  maxFrameBytes?: number
}

const REQUEST_TYPES = ['info-request', 'ping', 'record-request'] as const
const RESPONSE_TYPES = ['info', 'pong', 'record', 'error'] as const
const SEMVER_PATTERN = /^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]*)?$/

export function parseInfoRequest (bytes: Uint8Array, limits: InfoLimits = {}): InfoRequest {
  return validateInfoRequest(unpackValue(bytes, { maxBytes: limits.maxFrameBytes }), limits)
}

export function parseInfoResponse (bytes: Uint8Array, limits: InfoLimits = {}): InfoResponse {
  return validateInfoResponse(unpackValue(bytes, { maxBytes: limits.maxFrameBytes }), limits)
}

export function encodeInfoRequest (message: InfoRequest, limits: InfoLimits = {}): Uint8Array {
  return packValue(validateInfoRequest(message, limits), limits.maxFrameBytes ?? MAX_FRAME_BYTES)
}

export function encodeInfoResponse (message: InfoResponse, limits: InfoLimits = {}): Uint8Array {
  return packValue(validateInfoResponse(message, limits), limits.maxFrameBytes ?? MAX_FRAME_BYTES)
}

export function validateInfoRequest (value: unknown, limits: InfoLimits = {}): InfoRequest {
  const obj = expectObject(value, 'message')
  const type = expectOneOf(field(obj, 'type'), 'message.type', REQUEST_TYPES)
  if (type === 'info-request') return { type }
  if (type === 'record-request') return { type, modelId: expectModelId(field(obj, 'modelId'), 'record-request.modelId') }
  return validatePing(obj, 'ping', limits)
}

export function validateInfoResponse (value: unknown, limits: InfoLimits = {}): InfoResponse {
  const obj = expectObject(value, 'message')
  const type = expectOneOf(field(obj, 'type'), 'message.type', RESPONSE_TYPES)
  switch (type) {
    case 'info': return validateInfo(obj)
    case 'pong': return validatePing(obj, 'pong', limits)
    case 'record': return { type, value: expectBytes(field(obj, 'value'), 'record.value', MAX_RECORD_VALUE_BYTES) }
    case 'error':
      return {
        type,
        code: expectString(field(obj, 'code'), 'error.code', 64, /^[a-z][a-z0-9-]*$/),
        message: expectString(field(obj, 'message'), 'error.message', MAX_ERROR_MESSAGE_LENGTH)
      }
  }
}

function validatePing<T extends 'ping' | 'pong'> (obj: Fields, type: T, limits: InfoLimits): { type: T, nonce: number, payload?: Uint8Array } {
  const message: { type: T, nonce: number, payload?: Uint8Array } = {
    type,
    nonce: expectInt(field(obj, 'nonce'), `${type}.nonce`, 0)
  }
  const payload = optional(field(obj, 'payload'),
    v => expectBytes(v, `${type}.payload`, limits.maxFrameBytes ?? MAX_FRAME_BYTES))
  if (payload !== undefined) message.payload = payload
  return message
}

function validateInfo (obj: Fields): InfoMessage {
  return {
    type: 'info',
    peerId: expectPeerId(field(obj, 'peerId'), 'info.peerId'),
    modelId: expectModelId(field(obj, 'modelId'), 'info.modelId'),
    blocks: expectBlockRange(field(obj, 'blocks'), 'info.blocks'),
    state: expectOneOf(field(obj, 'state'), 'info.state', SERVER_STATES),
    throughput: expectThroughput(field(obj, 'throughput'), 'info.throughput'),
    load: expectNumber(field(obj, 'load'), 'info.load', 0, 1),
    cacheTokensLeft: expectInt(field(obj, 'cacheTokensLeft'), 'info.cacheTokensLeft', 0),
    version: expectVersion(field(obj, 'version'), 'info.version')
  }
}

export function expectThroughput (value: unknown, path: string): Throughput {
  const obj = expectObject(value, path)
  return {
    inference: expectNumber(field(obj, 'inference'), `${path}.inference`, 0, Number.MAX_VALUE),
    forward: expectNumber(field(obj, 'forward'), `${path}.forward`, 0, Number.MAX_VALUE)
  }
}

export function expectVersion (value: unknown, path: string): string {
  return expectString(value, path, MAX_VERSION_LENGTH, SEMVER_PATTERN)
}

/** A peer id string that parses (base58btc or CID form). */
export function expectPeerId (value: unknown, path: string): string {
  const text = expectString(value, path, 128)
  if (knownPeerIds.has(text)) return text
  try {
    peerIdFromString(text)
  } catch (err) {
    throw new MalformedMessageError(`${path} is not a peer id: ${(err as Error).message}`, { cause: err })
  }
  // steps name their neighbours' peer ids every time: remember the last few that parsed
  if (knownPeerIds.size >= 256) knownPeerIds.clear()
  knownPeerIds.add(text)
  return text
}

const knownPeerIds = new Set<string>()

/** Whether a peer's protocol version can talk to ours: same major (for 0.x, same minor). */
export function isCompatibleVersion (version: string, ours: string = PROTOCOL_VERSION): boolean {
  const a = SEMVER_PATTERN.test(version) ? version.split(/[.+-]/).map(Number) : undefined
  const b = ours.split(/[.+-]/).map(Number)
  if (a === undefined) return false
  if (a[0] !== b[0]) return false
  return a[0] !== 0 || a[1] === b[1]
}

/** Throws UnsupportedVersionError unless isCompatibleVersion(version). */
export function assertCompatibleVersion (version: string, ours: string = PROTOCOL_VERSION): void {
  if (!isCompatibleVersion(version, ours)) {
    throw new UnsupportedVersionError(`peer speaks protocol ${version}, we speak ${ours}`)
  }
}
