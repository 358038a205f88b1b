import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { beforeAll, describe, expect, it } from 'vitest'
import { MAX_RECORD_TTL_MS, PROTOCOL_VERSION } from './constants.js'
import { InvalidRecordError, InvalidSignatureError, RecordExpiredError } from './errors.js'
import { packValue, unpackValue } from './msgpack.js'
import {
  createRecordValidators, decodeRecordValue, nextRecordSeq, parseRecordKey, recordKey, recordSelectors, recordValidators, selectRecord,
  signRecord, type SwarmRecord, validateRecord, verifyRecordValue
} from './record.js'

const NOW = 1_800_000_000_000
let key: Ed25519PrivateKey
let otherKey: Ed25519PrivateKey
let peerId: string
let otherPeerId: string
let record: SwarmRecord

beforeAll(async () => {
  key = await generateKeyPair('Ed25519')
  otherKey = await generateKeyPair('Ed25519')
  peerId = peerIdFromPrivateKey(key).toString()
  otherPeerId = peerIdFromPrivateKey(otherKey).toString()
  record = {
    modelId: 'm0del', peerId, blocks: [0, 12], state: 'online', throughput: { inference: 50, forward: 900 },
    cacheTokensLeft: 16384, load: 0.1, version: PROTOCOL_VERSION, addrs: ['/ip4/127.0.0.1/tcp/4001'], seq: 5,
    expiresAt: NOW + 30_000
  }
})

/** Re-packs a signed value with a changed record or signature (what a forger could send). */
function tamper (value: Uint8Array, change: (outer: { record: Uint8Array, sig: Uint8Array }) => unknown): Uint8Array {
  const outer = unpackValue(value) as { record: Uint8Array, sig: Uint8Array }
  return packValue(change(outer))
}

describe('record keys', () => {
  it('builds and parses /swarm/<modelId>/<peerId>', () => {
    const k = recordKey('m0del', peerId)
    expect(new TextDecoder().decode(k)).toBe(`/swarm/m0del/${peerId}`)
    expect(parseRecordKey(k)).toEqual({ modelId: 'm0del', peerId })
  })

  it('rejects other keys', () => {
    const enc = (s: string): Uint8Array => new TextEncoder().encode(s)
    for (const bad of ['/ipns/x', `/swarm/m0del`, `/swarm/m0del/${peerId}/extra`, `/swarm//${peerId}`, '/swarm/m0del/notapeer', `swarm/m0del/${peerId}`]) {
      expect(() => parseRecordKey(enc(bad))).toThrow(InvalidRecordError)
    }
    expect(() => parseRecordKey(Uint8Array.from([0x2f, 0xff, 0xfe]))).toThrow(InvalidRecordError)
    expect(() => recordKey('a/b', peerId)).toThrow()
  })
})

describe('signed records', () => {
  it('signs and verifies', async () => {
    const value = await signRecord(record, key)
    expect(await verifyRecordValue(recordKey('m0del', peerId), value, { now: NOW })).toEqual(record)
  })

  it('passes the kad-dht validator with a current record', async () => {
    const value = await signRecord({ ...record, expiresAt: Date.now() + 30_000 }, key)
    await expect(recordValidators.swarm(recordKey('m0del', peerId), value)).resolves.toBeUndefined()
  })

  it('the per-host validator refuses a replayed older record once it has accepted a newer one', async () => {
    const validators = createRecordValidators()
    const k = recordKey('m0del', peerId)
    const at = (seq: number): Promise<Uint8Array> => signRecord({ ...record, seq, expiresAt: Date.now() + 30_000 }, key)
    const older = await at(10)
    const newer = await at(11)
    await expect(validators.swarm(k, older)).resolves.toBeUndefined()
    await expect(validators.swarm(k, newer)).resolves.toBeUndefined()
    await expect(validators.swarm(k, newer)).resolves.toBeUndefined()
    await expect(validators.swarm(k, older)).rejects.toThrow(/replay/)
    // another key is not affected
    await expect(validators.swarm(recordKey('other', peerId), await signRecord({ ...record, modelId: 'other', seq: 1, expiresAt: Date.now() + 30_000 }, key))).resolves.toBeUndefined()
  })

  it('refuses to sign with another peer\'s key', async () => {
    await expect(signRecord(record, otherKey)).rejects.toThrow(InvalidRecordError)
  })

  it('refuses to sign a malformed record', async () => {
    await expect(signRecord({ ...record, load: 2 }, key)).rejects.toThrow(InvalidRecordError)
  })

  it('rejects a forged signature', async () => {
    const value = await signRecord(record, key)
    const forged = tamper(value, o => ({ ...o, sig: o.sig.map((b, i) => i === 0 ? b ^ 1 : b) }))
    await expect(verifyRecordValue(recordKey('m0del', peerId), forged, { now: NOW })).rejects.toThrow(InvalidSignatureError)
    const short = tamper(value, o => ({ ...o, sig: o.sig.subarray(0, 10) }))
    await expect(verifyRecordValue(recordKey('m0del', peerId), short, { now: NOW })).rejects.toThrow(InvalidSignatureError)
  })

  it('rejects a record whose content was changed after signing', async () => {
    const value = await signRecord(record, key)
    const changed = tamper(value, o => ({ ...o, record: packValue({ ...record, blocks: [0, 40] }) }))
    await expect(verifyRecordValue(recordKey('m0del', peerId), changed, { now: NOW })).rejects.toThrow(InvalidSignatureError)
  })

  it('rejects a record signed by another key (claiming our peer id)', async () => {
    const value = await signRecord({ ...record, peerId: otherPeerId }, otherKey)
    const stolen = tamper(value, o => ({ record: packValue({ ...record }), sig: o.sig }))
    await expect(verifyRecordValue(recordKey('m0del', peerId), stolen, { now: NOW })).rejects.toThrow(InvalidSignatureError)
  })

  it('rejects a valid record stored under another peer\'s key', async () => {
    const value = await signRecord(record, key)
    await expect(verifyRecordValue(recordKey('m0del', otherPeerId), value, { now: NOW })).rejects.toThrow(/stored under peer/)
  })

  it('rejects a record stored under a different model id', async () => {
    const value = await signRecord(record, key)
    await expect(verifyRecordValue(recordKey('other-model', peerId), value, { now: NOW })).rejects.toThrow(/stored under model/)
  })

  it('rejects expired and implausibly long-lived records', async () => {
    const value = await signRecord(record, key)
    await expect(verifyRecordValue(recordKey('m0del', peerId), value, { now: record.expiresAt })).rejects.toThrow(RecordExpiredError)
    const forever = await signRecord({ ...record, expiresAt: NOW + MAX_RECORD_TTL_MS + 1 }, key)
    await expect(verifyRecordValue(recordKey('m0del', peerId), forever, { now: NOW })).rejects.toThrow(RecordExpiredError)
  })

  it('rejects malformed values', async () => {
    const k = recordKey('m0del', peerId)
    const bad = [
      Uint8Array.from([1, 2, 3]),
      packValue('string'),
      packValue({ record: 'x', sig: new Uint8Array(64) }),
      packValue({ record: new Uint8Array([0xc1]), sig: new Uint8Array(64) }),
      packValue({ record: packValue({ ...record, seq: -1 }), sig: new Uint8Array(64) }),
      packValue({ record: packValue({ ...record, addrs: 'x' }), sig: new Uint8Array(64) }),
      new Uint8Array(100_000)
    ]
    for (const value of bad) {
      await expect(verifyRecordValue(k, value, { now: NOW })).rejects.toThrow(InvalidRecordError)
    }
  })

  it('validateRecord rejects each wrong field', () => {
    const cases: Array<Partial<Record<keyof SwarmRecord, unknown>>> = [
      { state: 'gone' }, { blocks: [2, 1] }, { throughput: { inference: 'fast', forward: 1 } }, { load: -0.1 },
      { cacheTokensLeft: 1.5 }, { version: '' }, { addrs: new Array(100).fill('/ip4/1.2.3.4') }, { seq: 'x' },
      { expiresAt: 0 }, { modelId: undefined }, { peerId: 'nope' }
    ]
    for (const change of cases) expect(() => validateRecord({ ...record, ...change })).toThrow(InvalidRecordError)
    expect(validateRecord({ ...record, extra: true })).toEqual(record)
  })
})

describe('record selector', () => {
  it('picks the highest seq; a replayed older seq loses', async () => {
    const k = recordKey('m0del', peerId)
    const older = await signRecord({ ...record, seq: 5 }, key)
    const newer = await signRecord({ ...record, seq: 6, blocks: [4, 8] }, key)
    expect(selectRecord(k, [older, newer], { now: NOW })).toBe(1)
    expect(selectRecord(k, [newer, older], { now: NOW })).toBe(0)
    expect(selectRecord(k, [older, older, newer, older], { now: NOW })).toBe(2)
    expect(decodeRecordValue(k, [older, newer][selectRecord(k, [older, newer], { now: NOW })]).record.seq).toBe(6)
  })

  it('prefers later expiry on equal seq, unexpired over expired, and valid over garbage', async () => {
    const k = recordKey('m0del', peerId)
    const a = await signRecord({ ...record, expiresAt: NOW + 1000 }, key)
    const b = await signRecord({ ...record, expiresAt: NOW + 2000 }, key)
    expect(selectRecord(k, [a, b], { now: NOW })).toBe(1)
    const expiredHigh = await signRecord({ ...record, seq: 99, expiresAt: NOW - 1 }, key)
    expect(selectRecord(k, [expiredHigh, a], { now: NOW })).toBe(1)
    expect(selectRecord(k, [Uint8Array.from([1, 2]), a], { now: NOW })).toBe(1)
    const wrongPeer = await signRecord({ ...record, peerId: otherPeerId, seq: 1000 }, otherKey)
    expect(selectRecord(k, [wrongPeer, a], { now: NOW })).toBe(1)
  })

  it('is exposed as the swarm kad-dht selector', async () => {
    const k = recordKey('m0del', peerId)
    const now = Date.now()
    const older = await signRecord({ ...record, seq: 1, expiresAt: now + 30_000 }, key)
    const newer = await signRecord({ ...record, seq: 2, expiresAt: now + 30_000 }, key)
    expect(recordSelectors.swarm(k, [older, newer])).toBe(1)
  })

  it('nextRecordSeq increases and tracks the clock', () => {
    expect(nextRecordSeq(undefined, NOW)).toBe(NOW)
    expect(nextRecordSeq(NOW + 10, NOW)).toBe(NOW + 11)
    expect(nextRecordSeq(5, NOW)).toBe(NOW)
  })
})
