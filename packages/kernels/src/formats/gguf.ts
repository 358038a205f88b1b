/**
 * GGUF (v2/v3) header reader: metadata key/values, tensor infos and their absolute data offsets. Reads only the
 * header through a file handle, never the tensor data, and validates every count, length and offset against the
 * file size so a truncated or corrupt file fails with a one-line `corrupt GGUF: ...` error.
 */
import { open } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { UnsupportedDTypeError, ggmlTypeToDType, tensorBytes } from '../quant/index.js'
import type { DType, GgufScalarType, TensorInfo } from '../types.js'
import { CorruptModelFileError, UnsupportedModelError } from './errors.js'
import { BufferedFileReader } from './io.js'

export const GGUF_MAGIC = 0x46554747 // "GGUF" little-endian
export const GGUF_DEFAULT_ALIGNMENT = 32

/** GGUF metadata value type ids (gguf_type) */
export const GGUF_VALUE_TYPE: Readonly<Record<GgufScalarType | 'array', number>> = {
  u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12
}

/** Longest metadata string accepted (a chat template or a merge list entry is far shorter). */
const MAX_STRING_BYTES = 64 * 1024 * 1024
const MAX_DIMS = 4
const MAX_ARRAY_DEPTH = 4

/** A tensor of a GGUF file: logical torch-order shape (GGUF dims reversed) and where its bytes are. */
export interface GgufTensorInfo extends TensorInfo {
  /** ggml type number as stored */
  ggmlType: number
  /** GGUF dims as stored, innermost first */
  dims: number[]
  /** absolute file offset of the first byte */
  offset: number
}

export interface GgufHeader {
  version: number
  /** metadata key -> value: numbers, bigint for 64-bit integers, booleans, strings, (nested) plain arrays */
  metadata: Record<string, unknown>
  /** metadata key -> stored value type ('array' for arrays), in file order */
  metadataTypes: Map<string, GgufScalarType | 'array'>
  tensors: GgufTensorInfo[]
  alignment: number
  /** absolute offset of the tensor data section */
  dataOffset: number
  fileSize: number
}

const corrupt = (message: string): CorruptModelFileError => new CorruptModelFileError(`corrupt GGUF: ${message}`)

const TYPE_NAMES = new Map<number, GgufScalarType | 'array'>(
  Object.entries(GGUF_VALUE_TYPE).map(([name, id]) => [id, name as GgufScalarType | 'array']))

/** Bytes of one value of a fixed-size type; strings and arrays return their minimum (the length prefix). */
function minValueBytes (type: GgufScalarType | 'array'): number {
  switch (type) {
    case 'u8': case 'i8': case 'bool': return 1
    case 'u16': case 'i16': return 2
    case 'u32': case 'i32': case 'f32': return 4
    case 'u64': case 'i64': case 'f64': case 'string': return 8
    case 'array': return 12
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: false })

async function readString (r: BufferedFileReader, what: string): Promise<string> {
  if (!r.has(8)) await r.ensure(8, what)
  const len = r.u64()
  if (len > BigInt(Math.min(MAX_STRING_BYTES, r.remaining))) {
    throw corrupt(`${what} has length ${len}, beyond the end of the file or the ${MAX_STRING_BYTES}-byte limit`)
  }
  const n = Number(len)
  if (!r.has(n)) await r.ensure(n, what)
  return utf8.decode(r.bytes(n))
}

async function readCount (r: BufferedFileReader, what: string, minItemBytes: number): Promise<number> {
  await r.ensure(8, what)
  const count = r.u64()
  if (count * BigInt(minItemBytes) > BigInt(r.remaining)) {
    throw corrupt(`${what} is ${count}, more than the ${r.remaining} bytes left in the file can hold`)
  }
  return Number(count)
}

async function readTypeId (r: BufferedFileReader, what: string): Promise<GgufScalarType | 'array'> {
  await r.ensure(4, what)
  const id = r.u32()
  const type = TYPE_NAMES.get(id)
  if (type === undefined) throw corrupt(`${what} has unknown value type ${id}`)
  return type
}

async function readValue (r: BufferedFileReader, type: GgufScalarType | 'array', key: string, depth: number): Promise<unknown> {
  if (type === 'string') return await readString(r, `string value of ${key}`)
  if (type === 'array') {
    if (depth >= MAX_ARRAY_DEPTH) throw corrupt(`array value of ${key} nests deeper than ${MAX_ARRAY_DEPTH} levels`)
    const itemType = await readTypeId(r, `array item type of ${key}`)
    const count = await readCount(r, `array length of ${key}`, minValueBytes(itemType))
    const out: unknown[] = new Array(count)
    if (itemType === 'string' || itemType === 'array') {
      for (let i = 0; i < count; i++) out[i] = await readValue(r, itemType, key, depth + 1)
      return out
    }
    const size = minValueBytes(itemType)
    // fixed-size items: read in slices so one buffer fill covers many items
    const perSlice = Math.max(1, Math.floor((1 << 20) / size))
    for (let i = 0; i < count; i += perSlice) {
      const n = Math.min(perSlice, count - i)
      await r.ensure(n * size, `array value of ${key}`)
      for (let j = 0; j < n; j++) out[i + j] = readScalar(r, itemType, key)
    }
    return out
  }
  await r.ensure(minValueBytes(type), `value of ${key}`)
  return readScalar(r, type, key)
}

function readScalar (r: BufferedFileReader, type: GgufScalarType, key: string): number | bigint | boolean {
  switch (type) {
    case 'u8': return r.u8()
    case 'i8': return r.i8()
    case 'u16': return r.u16()
    case 'i16': return r.i16()
    case 'u32': return r.u32()
    case 'i32': return r.i32()
    case 'f32': return r.f32()
    case 'f64': return r.f64()
    case 'u64': return r.u64()
    case 'i64': return r.i64()
    case 'bool': {
      const b = r.u8()
      if (b > 1) throw corrupt(`bool value of ${key} is ${b}`)
      return b === 1
    }
    default: throw corrupt(`value of ${key} has non-scalar type ${type}`)
  }
}

/** Read the header of the GGUF file at `path`. */
export async function readGgufHeader (path: string, options: { signal?: AbortSignal } = {}): Promise<GgufHeader> {
  const handle = await open(path, 'r')
  try {
    return await readGgufHeaderFrom(handle, options)
  } finally {
    await handle.close()
  }
}

/** Read a GGUF header through an open handle (the caller keeps it open to load tensors). */
export async function readGgufHeaderFrom (handle: FileHandle, options: { signal?: AbortSignal } = {}): Promise<GgufHeader> {
  const fileSize = (await handle.stat()).size
  const r = new BufferedFileReader(handle, fileSize, corrupt, 1 << 20, options.signal)
  await r.ensure(4, 'magic')
  const magic = r.u32()
  if (magic !== GGUF_MAGIC) throw corrupt(`bad magic 0x${magic.toString(16).padStart(8, '0')} (expected "GGUF")`)
  await r.ensure(4, 'version')
  const version = r.u32()
  if (version !== 2 && version !== 3) {
    throw new UnsupportedModelError(`unsupported GGUF version ${version} (supported: 2, 3)`)
  }
  // a tensor info is at least name length 8 + n_dims 4 + type 4 + offset 8; a key/value at least 8 + 4 + 1
  const tensorCount = await readCount(r, 'tensor count', 24)
  const kvCount = await readCount(r, 'metadata count', 13)

  const metadata: Record<string, unknown> = {}
  const metadataTypes = new Map<string, GgufScalarType | 'array'>()
  for (let i = 0; i < kvCount; i++) {
    const key = await readString(r, `key of metadata entry ${i}`)
    if (metadataTypes.has(key)) throw corrupt(`metadata key ${key} appears twice`)
    const type = await readTypeId(r, `type of ${key}`)
    metadata[key] = await readValue(r, type, key, 0)
    metadataTypes.set(key, type)
  }

  const alignmentValue = metadata['general.alignment'] ?? GGUF_DEFAULT_ALIGNMENT
  const alignment = typeof alignmentValue === 'bigint' ? Number(alignmentValue) : alignmentValue
  if (typeof alignment !== 'number' || !Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
    throw corrupt(`general.alignment is ${String(alignmentValue)}, not a power of two`)
  }

  const raw: Array<{ name: string, dims: number[], ggmlType: number, relOffset: bigint }> = []
  const names = new Set<string>()
  for (let i = 0; i < tensorCount; i++) {
    const name = await readString(r, `name of tensor ${i}`)
    if (names.has(name)) throw corrupt(`tensor ${name} appears twice`)
    names.add(name)
    await r.ensure(4, `dims of ${name}`)
    const nDims = r.u32()
    if (nDims < 1 || nDims > MAX_DIMS) throw corrupt(`tensor ${name} has ${nDims} dims (1..${MAX_DIMS} allowed)`)
    await r.ensure(8 * nDims + 12, `info of ${name}`)
    const dims: number[] = []
    for (let d = 0; d < nDims; d++) {
      const dim = r.u64()
      if (dim < 1n || dim > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`tensor ${name} has dim ${dim}`)
      dims.push(Number(dim))
    }
    const ggmlType = r.u32()
    const relOffset = r.u64()
    raw.push({ name, dims, ggmlType, relOffset })
  }
  const dataOffset = Math.ceil(r.offset / alignment) * alignment

  const tensors: GgufTensorInfo[] = raw.map(({ name, dims, ggmlType, relOffset }) => {
    let dtype: DType
    try {
      dtype = ggmlTypeToDType(ggmlType)
    } catch (err) {
      throw new UnsupportedDTypeError(`tensor ${name}: ${(err as Error).message}`, { cause: err })
    }
    const shape = [...dims].reverse()
    let byteLength: number
    try {
      byteLength = tensorBytes(dtype, shape)
    } catch (err) {
      throw corrupt(`tensor ${name} of shape [${shape.join(', ')}]: ${(err as Error).message}`)
    }
    if (relOffset % BigInt(alignment) !== 0n) throw corrupt(`tensor ${name} offset ${relOffset} is not a multiple of the alignment ${alignment}`)
    const end = BigInt(dataOffset) + relOffset + BigInt(byteLength)
    if (end > BigInt(fileSize)) {
      throw corrupt(`tensor ${name} (${byteLength} bytes at data offset ${relOffset}) runs past the end of the file (${fileSize} bytes); truncated?`)
    }
    return { name, dtype, shape, byteLength, ggmlType, dims, offset: dataOffset + Number(relOffset) }
  })
  return { version, metadata, metadataTypes, tensors, alignment, dataOffset, fileSize }
}
