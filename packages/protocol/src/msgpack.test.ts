import { describe, expect, it } from 'vitest'
import { FrameTooLargeError, MalformedMessageError } from './errors.js'
import { packValue, scanMsgpack, unpackValue } from './msgpack.js'

describe('msgpack framing', () => {
  it('round-trips plain values and bytes', () => {
    const value = { a: 1, b: 'x', c: [1, 2.5, null, true], d: new Uint8Array([1, 2, 3]), e: { f: -7 } }
    const back = unpackValue(packValue(value)) as typeof value
    expect(back.a).toBe(1)
    expect(back.c).toEqual([1, 2.5, null, true])
    expect(back.d).toBeInstanceOf(Uint8Array)
    expect(Array.from(back.d)).toEqual([1, 2, 3])
    expect(back.e).toEqual({ f: -7 })
  })

  it('refuses frames over the limit on both ends', () => {
    const bytes = packValue({ d: new Uint8Array(1000) })
    expect(() => unpackValue(bytes, { maxBytes: 100 })).toThrow(FrameTooLargeError)
    expect(() => packValue({ d: new Uint8Array(1000) }, 100)).toThrow(FrameTooLargeError)
  })

  const hostile: Array<[string, number[]]> = [
    ['empty', []],
    ['array32 claiming 2^31 elements', [0xdd, 0x7f, 0xff, 0xff, 0xff, 1]],
    ['map32 claiming 2^31 entries', [0xdf, 0x7f, 0xff, 0xff, 0xff, 1, 1]],
    ['str32 longer than the frame', [0xdb, 0x00, 0x10, 0x00, 0x00, 0x61]],
    ['bin32 longer than the frame', [0xc6, 0x7f, 0xff, 0xff, 0xff, 0x61]],
    ['ext (timestamp)', [0xd6, 0xff, 0, 0, 0, 1]],
    ['ext32 record definition', [0xc9, 0, 0, 0, 1, 0x72, 0]],
    ['ext RegExp', [0xd4, 0x78, 0]],
    ['typed array of unknown code', [0xc7, 2, 0x74, 16, 0]],
    ['Float32Array of 3 bytes', [0xc7, 4, 0x74, 7, 0, 0, 0]],
    ['empty typed array extension', [0xc7, 0, 0x74]],
    ['reserved 0xc1', [0xc1]],
    ['truncated uint64', [0xcf, 1, 2]],
    ['trailing bytes', [0x01, 0x02]],
    ['unterminated fixarray', [0x93, 1, 2]]
  ]
  for (const [name, bytes] of hostile) {
    it(`rejects ${name}`, () => {
      expect(() => unpackValue(Uint8Array.from(bytes))).toThrow(MalformedMessageError)
    })
  }

  it('rejects deep nesting and long containers before decoding', () => {
    expect(() => scanMsgpack(new Uint8Array(100_000).fill(0x91))).toThrow(/nesting deeper/)
    expect(() => scanMsgpack(packValue(new Array(5000).fill(0)))).toThrow(/container of 5000/)
    expect(() => scanMsgpack(packValue(new Array(100).fill(0)), { maxContainerLength: 10 })).toThrow(/limit is 10/)
    expect(() => scanMsgpack(packValue('x'.repeat(100)), { maxStringBytes: 10 })).toThrow(/string of 100/)
    const many = Array.from({ length: 100 }, () => [1, 2, 3])
    expect(() => scanMsgpack(packValue(many), { maxItems: 50 })).toThrow(/more than 50/)
  })

  it('accepts every scalar encoding width', () => {
    const value = [0, 200, 70000, 2 ** 40, -5, -200, -70000, -(2 ** 40), 1.5, 'a'.repeat(40), 'b'.repeat(300),
      new Uint8Array(300), new Uint8Array(70000), new Array(20).fill(1), Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i]))]
    const bytes = packValue(value)
    expect(() => scanMsgpack(bytes)).not.toThrow()
    expect(unpackValue(bytes)).toHaveLength(value.length)
  })

  it('accepts msgpackr undefined (object fields set to undefined)', () => {
    expect(unpackValue(packValue({ a: undefined, b: 1 }))).toEqual({ a: undefined, b: 1 })
    expect(() => unpackValue(Uint8Array.from([0xd4, 0, 1]))).toThrow(MalformedMessageError)
  })

  it('round-trips typed arrays (moreTypes)', () => {
    const back = unpackValue(packValue({ f: Float32Array.from([1.5, -2]), u: new Uint8Array([7]) })) as Record<string, unknown>
    expect(back.f).toBeInstanceOf(Float32Array)
    expect(Array.from(back.f as Float32Array)).toEqual([1.5, -2])
    expect(back.u).toBeInstanceOf(Uint8Array)
  })

  it('never creates prototype pollution from __proto__ keys', () => {
    const bytes = packValue(JSON.parse('{"__proto__": {"polluted": 1}, "type": "x"}'))
    const value = unpackValue(bytes) as Record<string, unknown>
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('throws only typed errors on random bytes', () => {
    let seed = 1
    const rand = (): number => { seed = (Math.imul(seed, 48271) + 11) >>> 0; return seed }
    for (let i = 0; i < 3000; i++) {
      const bytes = new Uint8Array(1 + (rand() % 64))
      for (let j = 0; j < bytes.length; j++) bytes[j] = rand() & 0xff
      try {
        unpackValue(bytes)
      } catch (err) {
        expect(err).toBeInstanceOf(MalformedMessageError)
      }
    }
  })
})
