import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { beforeAll, describe, expect, it } from 'vitest'
import { MAX_RECORD_VALUE_BYTES, PROTOCOL_VERSION } from './constants.js'
import { MalformedMessageError, UnsupportedVersionError } from './errors.js'
import {
  assertCompatibleVersion, encodeInfoRequest, encodeInfoResponse, type InfoMessage, isCompatibleVersion,
  parseInfoRequest, parseInfoResponse
} from './info.js'
import { packValue } from './msgpack.js'

let info: InfoMessage

beforeAll(async () => {
  const peerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  info = {
    type: 'info', peerId, modelId: 'model-1', blocks: [0, 16], state: 'online',
    throughput: { inference: 120.5, forward: 2000 }, load: 0.25, cacheTokensLeft: 8192, version: PROTOCOL_VERSION
  }
})

describe('info protocol', () => {
  it('round-trips requests', () => {
    expect(parseInfoRequest(encodeInfoRequest({ type: 'info-request' }))).toEqual({ type: 'info-request' })
    expect(parseInfoRequest(encodeInfoRequest({ type: 'ping', nonce: 7 }))).toEqual({ type: 'ping', nonce: 7 })
    const probe = parseInfoRequest(encodeInfoRequest({ type: 'ping', nonce: 8, payload: new Uint8Array(1000).fill(3) }))
    expect(probe.type === 'ping' && probe.payload?.length).toBe(1000)
  })

  it('round-trips responses', () => {
    expect(parseInfoResponse(encodeInfoResponse(info))).toEqual(info)
    expect(parseInfoResponse(encodeInfoResponse({ type: 'pong', nonce: 7 }))).toEqual({ type: 'pong', nonce: 7 })
    const error = { type: 'error' as const, code: 'busy', message: 'later' }
    expect(parseInfoResponse(encodeInfoResponse(error))).toEqual(error)
  })

  it('drops unknown fields', () => {
    expect(parseInfoResponse(packValue({ ...info, gpu: 'H100' }))).toEqual(info)
  })

  const badInfo: Array<[string, (i: InfoMessage) => unknown]> = [
    ['bad peer id', i => ({ ...i, peerId: 'not-a-peer' })],
    ['load above 1', i => ({ ...i, load: 1.5 })],
    ['load NaN', i => ({ ...i, load: NaN })],
    ['negative throughput', i => ({ ...i, throughput: { inference: -1, forward: 1 } })],
    ['throughput missing forward', i => ({ ...i, throughput: { inference: 1 } })],
    ['unknown state', i => ({ ...i, state: 'sleeping' })],
    ['version not semver', i => ({ ...i, version: 'latest' })],
    ['blocks reversed', i => ({ ...i, blocks: [3, 1] })],
    ['cacheTokensLeft float', i => ({ ...i, cacheTokensLeft: 0.5 })]
  ]
  for (const [name, make] of badInfo) {
    it(`rejects info with ${name}`, () => {
      expect(() => parseInfoResponse(packValue(make(info)))).toThrow(MalformedMessageError)
    })
  }

  it('rejects bad requests', () => {
    expect(() => parseInfoRequest(packValue({ type: 'info' }))).toThrow(MalformedMessageError)
    expect(() => parseInfoRequest(packValue({ type: 'ping' }))).toThrow(/nonce/)
    expect(() => parseInfoRequest(packValue({ type: 'ping', nonce: 1, payload: 'abc' }))).toThrow(/payload/)
    expect(() => parseInfoRequest(Uint8Array.from([0xc1]))).toThrow(MalformedMessageError)
  })

  it('round-trips a record-request and its record', () => {
    expect(parseInfoRequest(encodeInfoRequest({ type: 'record-request', modelId: 'model-1' }))).toEqual({ type: 'record-request', modelId: 'model-1' })
    const value = new Uint8Array(300).fill(9)
    expect(parseInfoResponse(encodeInfoResponse({ type: 'record', value }))).toEqual({ type: 'record', value })
  })

  it('rejects bad record-requests and records', () => {
    expect(() => parseInfoRequest(packValue({ type: 'record-request' }))).toThrow(/modelId/)
    expect(() => parseInfoRequest(packValue({ type: 'record-request', modelId: 7 }))).toThrow(MalformedMessageError)
    expect(() => parseInfoResponse(packValue({ type: 'record' }))).toThrow(/value/)
    expect(() => parseInfoResponse(packValue({ type: 'record', value: 'not bytes' }))).toThrow(MalformedMessageError)
    // no larger than a DHT record value may be
    expect(() => parseInfoResponse(packValue({ type: 'record', value: new Uint8Array(MAX_RECORD_VALUE_BYTES + 1) }))).toThrow(MalformedMessageError)
  })

  it('checks protocol version compatibility', () => {
    expect(isCompatibleVersion('1.4.2', '1.0.0')).toBe(true)
    expect(isCompatibleVersion('1.0.0-beta.1', '1.0.0')).toBe(true)
    expect(isCompatibleVersion('2.0.0', '1.0.0')).toBe(false)
    expect(isCompatibleVersion('0.2.0', '0.3.0')).toBe(false)
    expect(isCompatibleVersion('0.3.9', '0.3.0')).toBe(true)
    expect(isCompatibleVersion('garbage', '1.0.0')).toBe(false)
    expect(() => assertCompatibleVersion('2.1.0')).toThrow(UnsupportedVersionError)
    expect(() => assertCompatibleVersion(PROTOCOL_VERSION)).not.toThrow()
  })
})
