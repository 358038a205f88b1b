import { describe, expect, it } from 'vitest'
import { newSessionId } from './common.js'
import { errorFromWire, FrameTooLargeError, InvalidTensorError, MalformedMessageError, TooLongError } from './errors.js'
import {
  type ClientMessage, encodeClientMessage, encodeNodeMessage, encodePushMessage, errorMessage, type NodeMessage,
  parseClientMessage, parseNodeMessage, parsePushMessage, type PushMessage
} from './messages.js'
import { MAX_PUSH_TOKENS } from './constants.js'
import { packValue } from './msgpack.js'
import { decodeTensor, encodeTensor } from './tensor.js'

const sessionId = newSessionId()
const hidden = encodeTensor(Float32Array.from({ length: 12 }, (_, i) => i / 4), [3, 4], 'f16')
const open: ClientMessage = { type: 'open', sessionId, modelId: 'abc123', blocks: [2, 10], maxLength: 512, dtype: 'bf16' }
const step: ClientMessage = { type: 'step', stepId: 4, hidden, position: 17 }
const raw = (value: unknown): Uint8Array => packValue(value)
// two real Ed25519 peer ids
const PEER_A = '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA'
const PEER_B = '12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK'

describe('client messages', () => {
  it('newSessionId is 32 random hex characters', () => {
    expect(sessionId).toMatch(/^[0-9a-f]{32}$/)
    expect(newSessionId()).not.toBe(sessionId)
  })

  it('round-trips open, step (with startFrom) and close', () => {
    expect(parseClientMessage(encodeClientMessage(open))).toEqual(open)
    const back = parseClientMessage(encodeClientMessage(step))
    expect(back).toMatchObject({ type: 'step', stepId: 4, position: 17 })
    if (back.type !== 'step') throw new Error('unreachable')
    expect(decodeTensor(back.hidden)).toEqual(decodeTensor(hidden))
    const replay = { ...step, startFrom: 17 }
    expect(parseClientMessage(encodeClientMessage(replay))).toMatchObject({ startFrom: 17 })
    expect(parseClientMessage(encodeClientMessage({ type: 'close' }))).toEqual({ type: 'close' })
    const neighbours = { ...step, next: PEER_A, prev: PEER_B }
    expect(parseClientMessage(encodeClientMessage(neighbours))).toMatchObject({ next: PEER_A, prev: PEER_B })
    const batched = { ...step, hidden: encodeTensor(new Float32Array(24), [2, 3, 4]) }
    expect(parseClientMessage(encodeClientMessage(batched))).toMatchObject({ type: 'step' })
  })

  it('round-trips a step whose input is a push (pushedTokens instead of hidden)', () => {
    const light: ClientMessage = { type: 'step', stepId: 5, position: 18, pushedTokens: 1, prev: PEER_A, next: PEER_B }
    expect(parseClientMessage(encodeClientMessage(light))).toEqual(light)
    // a step without its tensor is a few dozen bytes, whatever the hidden size
    expect(encodeClientMessage(light).length).toBeLessThan(200)
  })

  it('tolerates and drops unknown fields; treats null optional fields as absent', () => {
    const parsed = parseClientMessage(raw({ ...open, dtype: null, futureField: { x: 1 } }))
    expect(parsed).toEqual({ ...open, dtype: undefined })
    expect(Object.keys(parsed)).not.toContain('futureField')
    expect(Object.keys(parsed)).not.toContain('dtype')
  })

  const malformed: Array<[string, unknown]> = [
    ['not a map', [1, 2, 3]],
    ['a string', 'open'],
    ['missing type', { sessionId }],
    ['unknown type', { type: 'reboot' }],
    ['node type sent by client', { type: 'opened', sessionId, cacheTokensLeft: 1 }],
    ['short session id', { ...open, sessionId: 'abcd' }],
    ['uppercase session id', { ...open, sessionId: sessionId.toUpperCase() }],
    ['session id as bytes', { ...open, sessionId: new Uint8Array(16) }],
    ['model id with slash', { ...open, modelId: 'a/b' }],
    ['empty model id', { ...open, modelId: '' }],
    ['huge model id', { ...open, modelId: 'a'.repeat(1000) }],
    ['blocks not a pair', { ...open, blocks: [1] }],
    ['empty block range', { ...open, blocks: [4, 4] }],
    ['reversed block range', { ...open, blocks: [5, 2] }],
    ['negative block', { ...open, blocks: [-1, 2] }],
    ['fractional block', { ...open, blocks: [0.5, 2] }],
    ['blocks as strings', { ...open, blocks: ['0', '2'] }],
    ['maxLength zero', { ...open, maxLength: 0 }],
    ['maxLength huge', { ...open, maxLength: 2 ** 40 }],
    ['maxLength string', { ...open, maxLength: '512' }],
    ['maxLength NaN', { ...open, maxLength: NaN }],
    ['unknown dtype', { ...open, dtype: 'f64' }],
    ['negative stepId', { ...step, stepId: -1 }],
    ['stepId bigint-sized', { ...step, stepId: 2n ** 63n }],
    ['position missing', { type: 'step', stepId: 0, hidden }],
    ['hidden missing', { type: 'step', stepId: 0, position: 0 }],
    ['both hidden and pushedTokens', { ...step, pushedTokens: 1, prev: PEER_A }],
    ['pushedTokens without prev', { type: 'step', stepId: 0, position: 0, pushedTokens: 1 }],
    ['pushedTokens with startFrom', { type: 'step', stepId: 0, position: 3, startFrom: 3, pushedTokens: 1, prev: PEER_A }],
    ['pushedTokens zero', { type: 'step', stepId: 0, position: 0, pushedTokens: 0, prev: PEER_A }],
    ['pushedTokens over MAX_PUSH_TOKENS', { type: 'step', stepId: 0, position: 0, pushedTokens: MAX_PUSH_TOKENS + 1, prev: PEER_A }],
    ['pushedTokens as a string', { type: 'step', stepId: 0, position: 0, pushedTokens: '1', prev: PEER_A }],
    ['startFrom != position', { ...step, startFrom: 3 }],
    ['next not a peer id', { ...step, next: 'not-a-peer' }],
    ['prev as bytes', { ...step, prev: new Uint8Array(34) }],
    ['next too long', { ...step, next: PEER_A.repeat(4) }]
  ]
  for (const [name, value] of malformed) {
    it(`rejects ${name}`, () => {
      expect(() => parseClientMessage(raw(value))).toThrow(MalformedMessageError)
    })
  }

  const badTensors: Array<[string, unknown]> = [
    ['hidden rank 1', encodeTensor(new Float32Array(4), [4])],
    ['hidden rank 4', encodeTensor(new Float32Array(4), [1, 1, 1, 4])],
    ['hidden with T = 0', encodeTensor(new Float32Array(0), [0, 4])],
    ['hidden bytes not matching shape', { ...hidden, shape: [4, 4] }],
    ['hidden with huge shape', { ...hidden, shape: [2 ** 30, 2 ** 30] }],
    ['hidden with unknown dtype', { ...hidden, dtype: 'int8' }]
  ]
  for (const [name, value] of badTensors) {
    it(`rejects ${name} with InvalidTensorError`, () => {
      expect(() => parseClientMessage(raw({ ...step, hidden: value }))).toThrow(InvalidTensorError)
    })
  }

  it('rejects random bytes with typed errors only', () => {
    let seed = 99
    const rand = (): number => { seed = (Math.imul(seed, 69069) + 1) >>> 0; return seed >>> 8 }
    for (let i = 0; i < 2000; i++) {
      const bytes = new Uint8Array(1 + (rand() % 80))
      for (let j = 0; j < bytes.length; j++) bytes[j] = rand() & 0xff
      expect(() => parseClientMessage(bytes)).toThrow(/./)
      try { parseClientMessage(bytes) } catch (err) { expect(err instanceof MalformedMessageError || err instanceof InvalidTensorError).toBe(true) }
    }
  })

  it('enforces the frame limit when parsing and encoding', () => {
    const big = { ...step, hidden: encodeTensor(new Float32Array(4096), [1, 4096]) }
    const bytes = encodeClientMessage(big)
    expect(() => parseClientMessage(bytes, { maxFrameBytes: 1024 })).toThrow(FrameTooLargeError)
    expect(() => encodeClientMessage(big, { maxFrameBytes: 1024 })).toThrow(FrameTooLargeError)
    expect(() => parseClientMessage(bytes, { maxElements: 100 })).toThrow(InvalidTensorError)
  })

  it('validates before encoding', () => {
    expect(() => encodeClientMessage({ ...open, blocks: [3, 1] })).toThrow(MalformedMessageError)
  })
})

describe('node messages', () => {
  const opened: NodeMessage = { type: 'opened', sessionId, cacheTokensLeft: 4096 }
  const result: NodeMessage = { type: 'result', stepId: 4, hidden }

  it('round-trips opened, result and error', () => {
    expect(parseNodeMessage(encodeNodeMessage(opened))).toEqual(opened)
    expect(parseNodeMessage(encodeNodeMessage({ ...opened, takesPushedInput: true }))).toEqual({ ...opened, takesPushedInput: true })
    expect(parseNodeMessage(encodeNodeMessage({ ...result, pushed: true }))).toMatchObject({ type: 'result', stepId: 4, pushed: true })
    const back = parseNodeMessage(encodeNodeMessage(result))
    if (back.type !== 'result') throw new Error('unreachable')
    expect(back.stepId).toBe(4)
    expect(decodeTensor(back.hidden)).toEqual(decodeTensor(hidden))
    const err = errorMessage(new TooLongError('past 512 tokens'), 4)
    expect(err).toEqual({ type: 'error', code: 'too-long', message: 'past 512 tokens', stepId: 4 })
    const parsed = parseNodeMessage(encodeNodeMessage(err))
    expect(parsed).toEqual(err)
    if (parsed.type !== 'error') throw new Error('unreachable')
    expect(errorFromWire(parsed)).toBeInstanceOf(TooLongError)
    expect(errorMessage(new Error('oops'))).toEqual({ type: 'error', code: 'internal', message: 'oops' })
  })

  it('accepts unknown error codes from newer peers', () => {
    const parsed = parseNodeMessage(raw({ type: 'error', code: 'new-thing', message: 'x' }))
    expect(parsed).toEqual({ type: 'error', code: 'new-thing', message: 'x' })
  })

  const malformed: Array<[string, unknown]> = [
    ['client type', { type: 'step', stepId: 0, hidden, position: 0 }],
    ['opened with negative cache', { ...opened, cacheTokensLeft: -1 }],
    ['opened with bad session', { ...opened, sessionId: 'x' }],
    ['result without stepId', { type: 'result', hidden }],
    ['result with pushed as a number', { ...result, pushed: 1 }],
    ['opened with takesPushedInput as a string', { ...opened, takesPushedInput: 'yes' }],
    ['error without message', { type: 'error', code: 'busy' }],
    ['error code with spaces', { type: 'error', code: 'no such', message: '' }],
    ['error message too long', { type: 'error', code: 'busy', message: 'x'.repeat(10_000) }],
    ['error stepId fractional', { type: 'error', code: 'busy', message: '', stepId: 1.5 }]
  ]
  for (const [name, value] of malformed) {
    it(`rejects ${name}`, () => {
      expect(() => parseNodeMessage(raw(value))).toThrow(MalformedMessageError)
    })
  }

  it('rejects a result with a malformed tensor', () => {
    expect(() => parseNodeMessage(raw({ ...result, hidden: { ...hidden, data: new Uint8Array(3) } }))).toThrow(InvalidTensorError)
  })
})

describe('push messages', () => {
  const push: PushMessage = { type: 'push', sessionId, position: 9, hidden }

  it('round-trips a push', () => {
    const back = parsePushMessage(encodePushMessage(push))
    expect(back).toMatchObject({ type: 'push', sessionId, position: 9 })
    expect(decodeTensor(back.hidden)).toEqual(decodeTensor(hidden))
  })

  const malformed: Array<[string, unknown]> = [
    ['a client step', step],
    ['missing session', { type: 'push', position: 0, hidden }],
    ['bad session', { ...push, sessionId: 'x' }],
    ['negative position', { ...push, position: -1 }],
    ['position past the longest session', { ...push, position: 2 ** 40 }]
  ]
  for (const [name, value] of malformed) {
    it(`rejects ${name}`, () => {
      expect(() => parsePushMessage(raw(value))).toThrow(MalformedMessageError)
    })
  }

  it('rejects a push with a malformed tensor and one over the frame limit', () => {
    expect(() => parsePushMessage(raw({ ...push, hidden: { ...hidden, shape: [5, 4] } }))).toThrow(InvalidTensorError)
    const big = encodePushMessage({ ...push, hidden: encodeTensor(new Float32Array(4096), [1, 4096]) })
    expect(() => parsePushMessage(big, { maxFrameBytes: 1024 })).toThrow(FrameTooLargeError)
  })
})
