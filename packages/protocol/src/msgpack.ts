import { Packr } from 'msgpackr'
import {
  MAX_FRAME_BYTES, MAX_MSGPACK_CONTAINER_LENGTH, MAX_MSGPACK_DEPTH, MAX_MSGPACK_ITEMS, MAX_MSGPACK_STRING_BYTES
} from './constants.js'
import { FrameTooLargeError, MalformedMessageError } from './errors.js'

// Both ends use the same options: plain maps as objects, no record structures, typed arrays round-trip.
const packr = new Packr({ useRecords: false, moreTypes: true })

const TYPED_ARRAY_EXT = 0x74
// by msgpackr's typed array code: Int8, Uint8, Uint8Clamped, Int16, Uint16, Int32, Uint32, Float32, Float64,
// BigInt64, BigUint64
const TYPED_ARRAY_ELEMENT_BYTES: readonly number[] = [1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8]

/** Structural limits checked by scanMsgpack before anything is decoded. */
export interface MsgpackLimits {
  /** Largest frame, bytes. */
  maxBytes?: number
  /** Deepest nesting of arrays/maps. */
  maxDepth?: number
  /** Most elements of one array or entries of one map. */
  maxContainerLength?: number
  /** Most items (scalars + containers) in the whole frame. */
  maxItems?: number
  /** Longest string, bytes (bin payloads are bounded by maxBytes only). */
  maxStringBytes?: number
}

/** Encodes a plain value (objects, arrays, strings, numbers, booleans, null, Uint8Array) as msgpack. */
export function packValue (value: unknown, maxBytes: number = MAX_FRAME_BYTES): Uint8Array {
  const bytes: Uint8Array = packr.pack(value)
  if (bytes.length > maxBytes) {
    throw new FrameTooLargeError(`encoded message is ${bytes.length} bytes, limit is ${maxBytes}`)
  }
  return bytes
}

/**
 * Decodes one msgpack value after scanMsgpack has checked its structure, so a hostile frame can neither make the
 * decoder allocate far more than its own size nor create anything but plain data and typed arrays.
 */
export function unpackValue (bytes: Uint8Array, limits: MsgpackLimits = {}): unknown {
  if (!(bytes instanceof Uint8Array)) throw new MalformedMessageError('frame is not a Uint8Array')
  scanMsgpack(bytes, limits)
  try {
    return packr.unpack(bytes)
  } catch (err) {
    throw new MalformedMessageError(`undecodable msgpack: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * Walks a msgpack frame without decoding it and throws MalformedMessageError on truncation, trailing bytes,
 * extension types, nesting deeper than maxDepth, containers longer than maxContainerLength, more than maxItems
 * items in all or strings longer than maxStringBytes, and on any extension type but typed arrays;
 * FrameTooLargeError when the frame exceeds maxBytes.
 */
export function scanMsgpack (bytes: Uint8Array, limits: MsgpackLimits = {}): void {
  const maxBytes = limits.maxBytes ?? MAX_FRAME_BYTES
  const maxDepth = limits.maxDepth ?? MAX_MSGPACK_DEPTH
  const maxContainerLength = limits.maxContainerLength ?? MAX_MSGPACK_CONTAINER_LENGTH
  const maxItems = limits.maxItems ?? MAX_MSGPACK_ITEMS
  const maxStringBytes = limits.maxStringBytes ?? MAX_MSGPACK_STRING_BYTES
  if (bytes.length > maxBytes) throw new FrameTooLargeError(`frame is ${bytes.length} bytes, limit is ${maxBytes}`)
  if (bytes.length === 0) throw new MalformedMessageError('empty frame')

  const end = bytes.length
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let pos = 0
  let items = 0
  // remaining[d] = items still expected at depth d; depth 0 is the single top-level value
  const remaining: number[] = [1]

  const need = (n: number): void => {
    if (pos + n > end) throw new MalformedMessageError(`truncated msgpack at byte ${pos}`)
  }
  const uint = (n: 1 | 2 | 4): number => {
    need(n)
    const v = n === 1 ? view.getUint8(pos) : n === 2 ? view.getUint16(pos) : view.getUint32(pos)
    pos += n
    return v
  }
  const skip = (n: number): void => {
    need(n)
    pos += n
  }
  const string = (n: number): void => {
    if (n > maxStringBytes) throw new MalformedMessageError(`string of ${n} bytes, limit is ${maxStringBytes}`)
    skip(n)
  }
  // Only msgpackr's typed-array extension (moreTypes: Uint8Array, Float32Array, ...) is accepted: it decodes to
  // exactly its own size, plus msgpackr's `undefined`. Dates, Errors, RegExps, Sets, Maps, records and shared
  // structures are refused.
  const ext = (n: number): void => {
    need(1)
    const type = bytes[pos++]
    if (type !== TYPED_ARRAY_EXT) throw new MalformedMessageError(`unsupported msgpack extension type ${type}`)
    if (n < 1) throw new MalformedMessageError('empty typed-array extension')
    need(n)
    const elementBytes = TYPED_ARRAY_ELEMENT_BYTES[bytes[pos]]
    if (elementBytes === undefined) throw new MalformedMessageError(`unsupported typed array code ${bytes[pos]}`)
    if ((n - 1) % elementBytes !== 0) {
      throw new MalformedMessageError(`typed array of ${n - 1} bytes is not a multiple of ${elementBytes}`)
    }
    pos += n
  }
  const container = (n: number): void => {
    if (n > maxContainerLength) {
      throw new MalformedMessageError(`container of ${n} elements, limit is ${maxContainerLength}`)
    }
    if (n === 0) return
    if (remaining.length > maxDepth) throw new MalformedMessageError(`nesting deeper than ${maxDepth}`)
    remaining.push(n)
  }

  while (remaining.length > 0) {
    if (remaining[remaining.length - 1] === 0) {
      remaining.pop()
      continue
    }
    remaining[remaining.length - 1]--
    if (++items > maxItems) throw new MalformedMessageError(`more than ${maxItems} msgpack items`)
    need(1)
    const b = bytes[pos++]
    if (b <= 0x7f || b >= 0xe0) continue // fixint
    if (b <= 0x8f) { container(2 * (b & 0x0f)); continue } // fixmap
    if (b <= 0x9f) { container(b & 0x0f); continue } // fixarray
    if (b <= 0xbf) { string(b & 0x1f); continue } // fixstr
    switch (b) {
      case 0xc0: case 0xc2: case 0xc3: continue // nil, false, true
      case 0xc4: skip(uint(1)); continue // bin8
      case 0xc5: skip(uint(2)); continue // bin16
      case 0xc6: skip(uint(4)); continue // bin32
      case 0xca: skip(4); continue // float32
      case 0xcb: skip(8); continue // float64
      case 0xcc: case 0xd0: skip(1); continue // (u)int8
      case 0xcd: case 0xd1: skip(2); continue // (u)int16
      case 0xce: case 0xd2: skip(4); continue // (u)int32
      case 0xcf: case 0xd3: skip(8); continue // (u)int64
      case 0xd9: string(uint(1)); continue // str8
      case 0xda: string(uint(2)); continue // str16
      case 0xdb: string(uint(4)); continue // str32
      case 0xdc: container(uint(2)); continue // array16
      case 0xdd: container(uint(4)); continue // array32
      case 0xde: container(2 * uint(2)); continue // map16
      case 0xdf: container(2 * uint(4)); continue // map32
      case 0xc7: ext(uint(1)); continue // ext8
      case 0xc8: ext(uint(2)); continue // ext16
      case 0xc9: ext(uint(4)); continue // ext32
      case 0xd4: // fixext1; msgpackr writes `undefined` as d4 00 00
        if (bytes[pos] === 0 && bytes[pos + 1] === 0 && pos + 2 <= end) { pos += 2; continue }
        ext(1); continue
      case 0xd5: ext(2); continue // fixext2
      case 0xd6: ext(4); continue // fixext4
      case 0xd7: ext(8); continue // fixext8
      case 0xd8: ext(16); continue // fixext16
      default:
        // 0xc1 is never used
        throw new MalformedMessageError(`unsupported msgpack type byte 0x${b.toString(16)} at byte ${pos - 1}`)
    }
  }
  if (pos !== end) throw new MalformedMessageError(`${end - pos} trailing bytes after the msgpack value`)
}
