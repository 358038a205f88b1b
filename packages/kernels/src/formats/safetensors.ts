/**
 * safetensors: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, __metadata__},
 * then the tensor bytes. Reads the header only; tensors are read one at a time by offset.
 */
import { open } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import type { DType, TensorInfo } from '../types.js'
import { CorruptModelFileError } from './errors.js'
import { UnsupportedDTypeError } from '../quant/index.js'
import { readExact, tensorDataOf, writeAll } from './io.js'
import type { ReadStats, TensorToWrite } from './io.js'

/** Largest header accepted (HF's own limit is 100 MB). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024

const DTYPES: Record<string, { dtype: DType, bytes: number }> = {
  F32: { dtype: 'f32', bytes: 4 },
  F16: { dtype: 'f16', bytes: 2 },
  BF16: { dtype: 'bf16', bytes: 2 }
}
const NAMES: Partial<Record<DType, string>> = { f32: 'F32', f16: 'F16', bf16: 'BF16' }

export interface SafetensorsTensorInfo extends TensorInfo {
  /** absolute file offset of the first byte */
  offset: number
}

export interface SafetensorsHeader {
  /** `__metadata__` string map */
  metadata: Record<string, string>
  /** in file (offset) order */
  tensors: SafetensorsTensorInfo[]
  /** absolute offset of the data section */
  dataOffset: number
  fileSize: number
}

const corrupt = (path: string, message: string): CorruptModelFileError =>
  new CorruptModelFileError(`corrupt safetensors: ${path}: ${message}`)

/** Read and validate the header of a safetensors file. */
export async function readSafetensorsHeader (path: string, options: { signal?: AbortSignal } = {}): Promise<SafetensorsHeader> {
  const handle = await open(path, 'r')
  try {
    return await readSafetensorsHeaderFrom(handle, path, options)
  } finally {
    await handle.close()
  }
}

export async function readSafetensorsHeaderFrom (handle: FileHandle, path: string,
  options: { signal?: AbortSignal } = {}): Promise<SafetensorsHeader> {
  const fileSize = (await handle.stat()).size
  if (fileSize < 8) throw corrupt(path, `file has ${fileSize} bytes, too short for the header length`)
  const lenBytes = await readExact(handle, 0, 8, { signal: options.signal })
  const headerLen = new DataView(lenBytes.buffer).getBigUint64(0, true)
  if (headerLen > BigInt(fileSize - 8)) throw corrupt(path, `header length ${headerLen} runs past the end of the file (${fileSize} bytes)`)
  if (headerLen > BigInt(MAX_HEADER_BYTES)) throw corrupt(path, `header length ${headerLen} exceeds ${MAX_HEADER_BYTES} bytes`)
  const n = Number(headerLen)
  const text = new TextDecoder().decode(await readExact(handle, 8, n, { signal: options.signal }))
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw corrupt(path, `header is not valid JSON (${(err as Error).message})`)
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw corrupt(path, 'header is not a JSON object')
  const dataOffset = 8 + n
  const dataSize = fileSize - dataOffset
  const metadata: Record<string, string> = {}
  const tensors: SafetensorsTensorInfo[] = []
  const ranges: Array<[number, number, string]> = []
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw corrupt(path, '__metadata__ is not an object')
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') throw corrupt(path, `__metadata__.${k} is not a string`)
        metadata[k] = v
      }
      continue
    }
    if (typeof entry !== 'object' || entry === null) throw corrupt(path, `entry ${name} is not an object`)
    const { dtype: st, shape, data_offsets: offsets } = entry as Record<string, unknown>
    if (typeof st !== 'string') throw corrupt(path, `tensor ${name} has no dtype`)
    const dt = DTYPES[st]
    if (dt === undefined) throw new UnsupportedDTypeError(`tensor ${name} in ${path} has unsupported safetensors dtype ${st} (supported: F32, F16, BF16)`)
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw corrupt(path, `tensor ${name} has a bad shape ${JSON.stringify(shape)}`)
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw corrupt(path, `tensor ${name} has bad data_offsets ${JSON.stringify(offsets)}`)
    }
    const [begin, end] = offsets as [number, number]
    const elements = (shape as number[]).reduce((a, b) => a * b, 1)
    const byteLength = elements * dt.bytes
    if (end < begin || end - begin !== byteLength) {
      throw corrupt(path, `tensor ${name} of ${st} [${shape.join(', ')}] needs ${byteLength} bytes, data_offsets [${begin}, ${end}] hold ${end - begin}`)
    }
    if (end > dataSize) throw corrupt(path, `tensor ${name} ends at data byte ${end}, the file holds ${dataSize}; truncated?`)
    ranges.push([begin, end, name])
    tensors.push({ name, dtype: dt.dtype, shape: shape as number[], byteLength, offset: dataOffset + begin })
  }
  ranges.sort((a, b) => a[0] - b[0] || a[1] - b[1])
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i][0] < ranges[i - 1][1]) throw corrupt(path, `tensors ${ranges[i - 1][2]} and ${ranges[i][2]} overlap`)
  }
  tensors.sort((a, b) => a.offset - b.offset)
  return { metadata, tensors, dataOffset, fileSize }
}

/** Read one tensor's bytes (positional read of exactly its range). */
export async function readSafetensorsTensor (handle: FileHandle, info: SafetensorsTensorInfo,
  options: { signal?: AbortSignal, stats?: ReadStats } = {}): Promise<Uint8Array> {
  return await readExact(handle, info.offset, info.byteLength, { ...options, what: `tensor ${info.name}` })
}

/** The JSON header HF writes: `__metadata__` first, tensors sorted by name, data in that order; space padded to 8 bytes. */
export function encodeSafetensorsHeader (tensors: readonly TensorToWrite[], metadata?: Record<string, string>):
{ header: Uint8Array, order: TensorToWrite[], byteLengths: number[] } {
  const order = [...tensors].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  const json: Record<string, unknown> = {}
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    const sorted: Record<string, string> = {}
    for (const k of Object.keys(metadata).sort()) {
      if (typeof metadata[k] !== 'string') throw new Error(`safetensors metadata ${k} must be a string`)
      sorted[k] = metadata[k]
    }
    json.__metadata__ = sorted
  }
  const byteLengths: number[] = []
  let offset = 0
  for (let i = 0; i < order.length; i++) {
    const t = order[i]
    if (i > 0 && order[i - 1].name === t.name) throw new Error(`tensor ${t.name} given twice`)
    if (t.name === '__metadata__') throw new Error('a tensor cannot be named __metadata__')
    const dtype = NAMES[t.dtype]
    if (dtype === undefined) throw new Error(`tensor ${t.name}: safetensors supports f32, f16, bf16, not ${t.dtype}`)
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new Error(`tensor ${t.name}: bad shape [${t.shape.join(', ')}]`)
    const byteLength = t.shape.reduce((a, b) => a * b, 1) * DTYPES[dtype].bytes
    json[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + byteLength] }
    byteLengths.push(byteLength)
    offset += byteLength
  }
  const text = JSON.stringify(json)
  const padded = text + ' '.repeat((8 - (Buffer.byteLength(text) % 8)) % 8)
  const body = new TextEncoder().encode(padded)
  const header = new Uint8Array(8 + body.length)
  new DataView(header.buffer).setBigUint64(0, BigInt(body.length), true)
  header.set(body, 8)
  return { header, order, byteLengths }
}

/** Write a safetensors file; tensor `data` may be a function so only one tensor's bytes are held at a time. */
export async function writeSafetensors (path: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>,
  options: { signal?: AbortSignal } = {}): Promise<void> {
  const { header, order, byteLengths } = encodeSafetensorsHeader(tensors, metadata)
  const handle = await open(path, 'w')
  try {
    await writeAll(handle, header)
    for (let i = 0; i < order.length; i++) {
      options.signal?.throwIfAborted()
      const data = await tensorDataOf(order[i])
      if (data.length !== byteLengths[i]) {
        throw new Error(`tensor ${order[i].name}: ${order[i].dtype} [${order[i].shape.join(', ')}] needs ${byteLengths[i]} bytes, data has ${data.length}`)
      }
      await writeAll(handle, data)
    }
  } finally {
    await handle.close()
  }
}
