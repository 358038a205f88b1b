import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import {
  DHT_KEY_NAMESPACE, MAX_ADDR_LENGTH, MAX_RECORD_ADDRS, MAX_RECORD_TTL_MS, MAX_RECORD_VALUE_BYTES
} from './constants.js'
import { type BlockRange, expectBlockRange, expectModelId, type Throughput } from './common.js'
import { InvalidRecordError, InvalidSignatureError, RecordExpiredError, SwarmError } from './errors.js'
import { expectArray, expectBytes, expectInt, expectNumber, expectObject, expectOneOf, expectString, field } from './fields.js'
import { expectPeerId, expectThroughput, expectVersion, SERVER_STATES, type ServerState } from './info.js'
import { packValue, unpackValue } from './msgpack.js'

/**
 * What a node announces on the DHT for one model, under the key `/swarm/<modelId>/<peerId>`, signed with the
 * peer's own Ed25519 key. Storing nodes keep values ~48 h regardless, so the lifetime is expiresAt, inside the
 * signed bytes.
 */
export interface SwarmRecord {
  modelId: string
  peerId: string
  /** Blocks served, [start, end). */
  blocks: BlockRange
  state: ServerState
  throughput: Throughput
  /** KV cache tokens free for new sessions. */
  cacheTokensLeft: number
  /** Fraction of compute in use, 0..1. */
  load: number
  /** Protocol version (semver). */
  version: string
  /** Multiaddrs the node listens on. */
  addrs: string[]
  /** Higher replaces lower (nextRecordSeq keeps it increasing across restarts). */
  seq: number
  /** ms since the epoch after which the record is invalid. */
  expiresAt: number
}

/** kad-dht validator: throws if the value is invalid for the key. */
export type RecordValidateFn = (key: Uint8Array, value: Uint8Array) => Promise<void>

/** kad-dht selector: index of the best of several values for one key. */
export type RecordSelectFn = (key: Uint8Array, records: Uint8Array[]) => number

export interface VerifyRecordOptions {
  /** Current time, ms since the epoch (default Date.now()). */
  now?: number
}

// Domain separation: a signature over a swarm record can never be replayed as another libp2p signature.
const SIGNATURE_DOMAIN = new TextEncoder().encode('/swarm/record/1.0.0\n')
const ED25519_SIGNATURE_BYTES = 64
const VALUE_LIMITS = { maxBytes: MAX_RECORD_VALUE_BYTES, maxContainerLength: 64, maxDepth: 4 }

/** DHT key of a node's record for a model: UTF-8 of `/swarm/<modelId>/<peerId>`. */
export function recordKey (modelId: string, peerId: string): Uint8Array {
  return new TextEncoder().encode(`/${DHT_KEY_NAMESPACE}/${expectModelId(modelId, 'modelId')}/${peerId}`)
}

/** The model id and peer id a record key names. Throws InvalidRecordError on any other key. */
export function parseRecordKey (key: Uint8Array): { modelId: string, peerId: string } {
  if (!(key instanceof Uint8Array) || key.length > 512) throw new InvalidRecordError('record key is not a swarm key')
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(key)
  } catch (err) {
    throw new InvalidRecordError('record key is not UTF-8', { cause: err })
  }
  const parts = text.split('/')
  if (parts.length !== 4 || parts[0] !== '' || parts[1] !== DHT_KEY_NAMESPACE) {
    throw new InvalidRecordError(`record key ${JSON.stringify(text.slice(0, 200))} is not /${DHT_KEY_NAMESPACE}/<modelId>/<peerId>`)
  }
  return wrap(() => ({ modelId: expectModelId(parts[2], 'key.modelId'), peerId: expectPeerId(parts[3], 'key.peerId') }))
}

/** Checks every field of a record; returns a clean copy. Throws InvalidRecordError. */
export function validateRecord (value: unknown): SwarmRecord {
  return wrap(() => {
    const obj = expectObject(value, 'record')
    const addrs = expectArray(field(obj, 'addrs'), 'record.addrs', 0, MAX_RECORD_ADDRS)
    return {
      modelId: expectModelId(field(obj, 'modelId'), 'record.modelId'),
      peerId: expectPeerId(field(obj, 'peerId'), 'record.peerId'),
      blocks: expectBlockRange(field(obj, 'blocks'), 'record.blocks'),
      state: expectOneOf(field(obj, 'state'), 'record.state', SERVER_STATES),
      throughput: expectThroughput(field(obj, 'throughput'), 'record.throughput'),
      cacheTokensLeft: expectInt(field(obj, 'cacheTokensLeft'), 'record.cacheTokensLeft', 0),
      load: expectNumber(field(obj, 'load'), 'record.load', 0, 1),
      version: expectVersion(field(obj, 'version'), 'record.version'),
      addrs: addrs.map((a, i) => expectString(a, `record.addrs[${i}]`, MAX_ADDR_LENGTH)),
      seq: expectInt(field(obj, 'seq'), 'record.seq', 0),
      expiresAt: expectInt(field(obj, 'expiresAt'), 'record.expiresAt', 1)
    }
  })
}

/** A sequence number above `previous` that also grows across restarts (it tracks the clock). */
export function nextRecordSeq (previous?: number, now: number = Date.now()): number {
  return Math.max((previous ?? -1) + 1, Math.floor(now))
}

/**
 * The DHT value for a record: msgpack `{ record, sig }`, sig = Ed25519 signature of the record bytes (with a
 * domain prefix) by the peer's key. The key must be the record peer's own.
 */
export async function signRecord (record: SwarmRecord, privateKey: PrivateKey): Promise<Uint8Array> {
  const clean = validateRecord(record)
  if (privateKey.type !== 'Ed25519') throw new InvalidRecordError(`records are signed with Ed25519 keys, not ${privateKey.type}`)
  const signer = peerIdFromPrivateKey(privateKey).toString()
  if (signer !== clean.peerId) throw new InvalidRecordError(`record of peer ${clean.peerId} cannot be signed by ${signer}`)
  const recordBytes = packValue(clean)
  const sig = await privateKey.sign(concat(SIGNATURE_DOMAIN, recordBytes))
  return packValue({ record: recordBytes, sig }, MAX_RECORD_VALUE_BYTES)
}

/**
 * Decodes a DHT value and checks that it matches its key, WITHOUT checking the signature or expiry (the selector
 * uses this on values the DHT has already verified).
 */
export function decodeRecordValue (key: Uint8Array, value: Uint8Array): { record: SwarmRecord, recordBytes: Uint8Array, sig: Uint8Array } {
  const { modelId, peerId } = parseRecordKey(key)
  const { recordBytes, sig } = wrap(() => {
    const outer = expectObject(unpackValue(value, VALUE_LIMITS), 'value')
    return {
      recordBytes: expectBytes(field(outer, 'record'), 'value.record', MAX_RECORD_VALUE_BYTES),
      sig: expectBytes(field(outer, 'sig'), 'value.sig', ED25519_SIGNATURE_BYTES)
    }
  })
  const record = validateRecord(wrap(() => unpackValue(recordBytes, VALUE_LIMITS)))
  if (record.peerId !== peerId) throw new InvalidRecordError(`record of peer ${record.peerId} stored under peer ${peerId}`)
  if (record.modelId !== modelId) throw new InvalidRecordError(`record of model ${record.modelId} stored under model ${modelId}`)
  return { record, recordBytes, sig }
}

/**
 * Verifies a DHT value against its key: well-formed, key and record agree on model and peer, Ed25519 signature by
 * the key's peer, not expired and not implausibly long-lived. Returns the record.
 * Throws InvalidRecordError, InvalidSignatureError or RecordExpiredError.
 */
export async function verifyRecordValue (key: Uint8Array, value: Uint8Array, options: VerifyRecordOptions = {}): Promise<SwarmRecord> {
  const now = options.now ?? Date.now()
  const { record, recordBytes, sig } = decodeRecordValue(key, value)
  const publicKey = peerIdFromString(record.peerId).publicKey
  if (publicKey?.type !== 'Ed25519') throw new InvalidSignatureError(`peer id ${record.peerId} does not embed an Ed25519 key`)
  let valid: boolean
  try {
    valid = await publicKey.verify(concat(SIGNATURE_DOMAIN, recordBytes), sig)
  } catch (err) {
    throw new InvalidSignatureError(`signature check failed: ${(err as Error).message}`, { cause: err })
  }
  if (!valid) throw new InvalidSignatureError(`bad signature on the record of ${record.peerId}`)
  if (record.expiresAt <= now) throw new RecordExpiredError(`record of ${record.peerId} expired ${now - record.expiresAt} ms ago`)
  if (record.expiresAt > now + MAX_RECORD_TTL_MS) {
    throw new RecordExpiredError(`record of ${record.peerId} claims to live ${record.expiresAt - now} ms, limit is ${MAX_RECORD_TTL_MS}`)
  }
  return record
}

/**
 * Index of the best value: decodable and matching the key first, then unexpired, then highest seq, then latest
 * expiresAt, then the first. Signatures are not re-checked: kad-dht runs the validator on every value first.
 */
export function selectRecord (key: Uint8Array, records: Uint8Array[], options: VerifyRecordOptions = {}): number {
  const now = options.now ?? Date.now()
  let best = 0
  let bestScore: [number, number, number, number] = [-1, -1, -1, -1]
  records.forEach((value, i) => {
    let score: [number, number, number, number]
    try {
      const { record } = decodeRecordValue(key, value)
      score = [1, record.expiresAt > now ? 1 : 0, record.seq, record.expiresAt]
    } catch {
      score = [0, 0, 0, 0]
    }
    for (let k = 0; k < score.length; k++) {
      if (score[k] > bestScore[k]) {
        best = i
        bestScore = score
        return
      }
      if (score[k] < bestScore[k]) return
    }
  })
  return best
}

/** Stateless kad-dht validators for swarm keys (signature, key, expiry); hosts use createRecordValidators(), which also refuses replays. */
export const recordValidators: Record<string, RecordValidateFn> = {
  [DHT_KEY_NAMESPACE]: async (key, value) => { await verifyRecordValue(key, value) }
}

/**
 * Validators that also refuse a record older (lower seq) than an unexpired one this host has already accepted for
 * the same key. kad-dht stores whatever passes validation, overwriting what it held, so without this a replayed
 * older record (validly signed, not yet expired) would replace the newer one on every storing node. One per host:
 * kadDHT({ validators: createRecordValidators() }). Remembers at most `maxKeys` keys (oldest forgotten first).
 */
export function createRecordValidators (options: { maxKeys?: number } = {}): Record<string, RecordValidateFn> {
  const maxKeys = options.maxKeys ?? 10_000
  const newest = new Map<string, { seq: number, expiresAt: number }>()
  return {
    [DHT_KEY_NAMESPACE]: async (key, value) => {
      const record = await verifyRecordValue(key, value)
      const id = new TextDecoder().decode(key)
      const seen = newest.get(id)
      if (seen !== undefined && seen.expiresAt > Date.now() && record.seq < seen.seq) {
        throw new InvalidRecordError(`record of ${record.peerId} has seq ${record.seq}, older than seq ${seen.seq} already accepted (a replay)`)
      }
      if (seen === undefined || record.seq >= seen.seq || seen.expiresAt <= Date.now()) {
        newest.delete(id)
        newest.set(id, { seq: record.seq, expiresAt: record.expiresAt })
        if (newest.size > maxKeys) newest.delete(newest.keys().next().value as string)
      }
    }
  }
}

/** kad-dht selectors for swarm keys (highest seq wins). */
export const recordSelectors: Record<string, RecordSelectFn> = {
  [DHT_KEY_NAMESPACE]: (key, records) => selectRecord(key, records)
}

function concat (a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length)
  out.set(a, 0)
  out.set(b, a.length)
  return out
}

/** Runs a check, turning its malformed-field errors into InvalidRecordError (typed record errors pass through). */
function wrap<T> (check: () => T): T {
  try {
    return check()
  } catch (err) {
    if (err instanceof InvalidRecordError || err instanceof InvalidSignatureError || err instanceof RecordExpiredError) throw err
    const message = err instanceof SwarmError || err instanceof Error ? err.message : String(err)
    throw new InvalidRecordError(message, { cause: err })
  }
}
