import { describe, expect, it } from 'vitest'
import { InvalidTensorError } from './errors.js'
import { roundToBf16, roundToF16 } from './float16.js'
import { packValue, unpackValue } from './msgpack.js'
import { decodeTensor, encodeTensor, shapeSize, validateWireTensor } from './tensor.js'

const sample = Float32Array.from([0, 1, -2.5, 3.14159, 1e-6, -65504, 123.456, 7])

describe('encodeTensor / decodeTensor', () => {
  it('round-trips f32 exactly through msgpack', () => {
    const wire = encodeTensor(sample, [2, 4])
    expect(wire).toMatchObject({ dtype: 'f32', shape: [2, 4] })
    expect(wire.data.length).toBe(32)
    const back = decodeTensor((unpackValue(packValue({ t: wire })) as { t: unknown }).t)
    expect(back.shape).toEqual([2, 4])
    expect(Array.from(back.data)).toEqual(Array.from(sample))
  })

  it('owns its bytes (no aliasing of the input or of the frame)', () => {
    const input = sample.slice()
    const wire = encodeTensor(input, [8])
    input[0] = 99
    expect(decodeTensor(wire).data[0]).toBe(0)
    const decoded = decodeTensor(wire)
    decoded.data[1] = 42
    expect(decodeTensor(wire).data[1]).toBe(1)
  })

  it('round-trips f16 and bf16 to the rounded values', () => {
    for (const [dtype, round] of [['f16', roundToF16], ['bf16', roundToBf16]] as const) {
      const wire = encodeTensor(sample, [8], dtype)
      expect(wire.data.length).toBe(16)
      expect(Array.from(decodeTensor(wire).data)).toEqual(Array.from(sample, v => round(v)))
    }
  })

  it('decodes tensors whose bytes sit at an odd offset', () => {
    const wire = encodeTensor(sample, [8], 'f32')
    const shifted = new Uint8Array(wire.data.length + 1)
    shifted.set(wire.data, 1)
    const data = shifted.subarray(1)
    expect(Array.from(decodeTensor({ ...wire, data }).data)).toEqual(Array.from(sample))
    const half = encodeTensor(sample, [8], 'f16')
    const shiftedHalf = new Uint8Array(half.data.length + 1)
    shiftedHalf.set(half.data, 1)
    expect(decodeTensor({ ...half, data: shiftedHalf.subarray(1) }).data[2]).toBe(-2.5)
  })

  it('decodes data that arrives as a Buffer view (msgpack bin) inside a larger frame', () => {
    const wire = encodeTensor(sample, [8], 'f32')
    const frame = packValue({ pad: 'xyz', t: { ...wire, data: Buffer.from(wire.data) } })
    expect(frame.includes(0xc4)).toBe(true) // sent as bin, not as a typed-array extension
    const received = (unpackValue(frame) as { t: { data: Uint8Array } }).t
    expect(Buffer.isBuffer(received.data)).toBe(true)
    expect(Array.from(decodeTensor(received).data)).toEqual(Array.from(sample))
    for (const dtype of ['f16', 'bf16'] as const) {
      const half = encodeTensor(sample, [8], dtype)
      const t = (unpackValue(packValue({ p: 'q', t: { ...half, data: Buffer.from(half.data) } })) as { t: unknown }).t
      expect(decodeTensor(t)).toEqual(decodeTensor(half))
    }
  })

  it('encodes an empty tensor', () => {
    const wire = encodeTensor(new Float32Array(0), [0, 16], 'f16')
    expect(decodeTensor(wire)).toEqual({ data: new Float32Array(0), shape: [0, 16] })
  })

  it('rejects NaN and Inf unless allowed, and keeps NaN when allowed', () => {
    for (const dtype of ['f32', 'f16', 'bf16'] as const) {
      const wire = encodeTensor(Float32Array.from([1, NaN]), [2], dtype)
      expect(() => decodeTensor(wire)).toThrow(InvalidTensorError)
      expect(Number.isNaN(decodeTensor(wire, { allowNonFinite: true }).data[1])).toBe(true)
      expect(() => decodeTensor(encodeTensor(Float32Array.from([-Infinity]), [1], dtype))).toThrow(/element 0/)
    }
    // overflow to Inf when narrowing is caught on decode
    expect(() => decodeTensor(encodeTensor(Float32Array.from([1e6]), [1], 'f16'))).toThrow(InvalidTensorError)
  })

  it('rejects a shape that disagrees with the data', () => {
    expect(() => encodeTensor(sample, [3, 3])).toThrow(InvalidTensorError)
    expect(() => encodeTensor(sample, [8], 'q4' as never)).toThrow(/dtype/)
  })
})

describe('validateWireTensor', () => {
  const good = encodeTensor(sample, [2, 4], 'f16')
  const bad: Array<[string, unknown]> = [
    ['not a map', 'tensor'],
    ['array', [1, 2]],
    ['unknown dtype', { ...good, dtype: 'f64' }],
    ['q8 dtype', { ...good, dtype: 'q8' }],
    ['missing dtype', { shape: good.shape, data: good.data }],
    ['shape not array', { ...good, shape: 8 }],
    ['negative dim', { ...good, shape: [-2, -4] }],
    ['fractional dim', { ...good, shape: [2.5, 4] }],
    ['string dim', { ...good, shape: ['2', 4] }],
    ['NaN dim', { ...good, shape: [NaN, 4] }],
    ['rank too high', { ...good, shape: [1, 1, 1, 1, 1, 1, 1, 1, 1, 8] }],
    ['too many elements', { ...good, shape: [1 << 20, 1 << 20] }],
    ['huge product overflow', { ...good, shape: [2 ** 40, 2 ** 40, 0] }],
    ['short data', { ...good, data: good.data.subarray(2) }],
    ['long data', { ...good, data: new Uint8Array(18) }],
    ['data not bytes', { ...good, data: Array.from(good.data) }],
    ['data Float32Array', { ...good, data: new Float32Array(4) }]
  ]
  for (const [name, value] of bad) {
    it(`rejects ${name}`, () => {
      expect(() => validateWireTensor(value)).toThrow(InvalidTensorError)
    })
  }

  it('honours caller limits', () => {
    expect(() => validateWireTensor(good, { maxElements: 7 })).toThrow(/exceeds 7 elements/)
    expect(() => validateWireTensor(good, { maxRank: 1 })).toThrow(/rank 2/)
    expect(validateWireTensor(good, { maxElements: 8, maxRank: 2 }).shape).toEqual([2, 4])
  })

  it('drops unknown fields', () => {
    expect(Object.keys(validateWireTensor({ ...good, extra: 1 }))).toEqual(['dtype', 'shape', 'data'])
  })

  it('shapeSize multiplies dimensions', () => {
    expect(shapeSize([])).toBe(1)
    expect(shapeSize([3, 0, 5])).toBe(0)
    expect(shapeSize([2, 3, 4])).toBe(24)
  })
})
