/**
 * GGUF v3 writer. Deterministic bytes for the same input; tensor data is written one tensor at a time after the
 * header, so a multi-GB file never sits in memory (give `data` as a function to produce each tensor on demand).
 */
import { open } from 'node:fs/promises'
import { DTYPE_INFO, tensorBytes } from '../quant/index.js'
import type { GgufEntry, GgufScalarType } from '../types.js'
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VALUE_TYPE } from './gguf.js'
import { tensorDataOf, writeAll } from './io.js'
import type { TensorToWrite } from './io.js'

export interface WriteGgufOptions {
  metadata: GgufEntry[]
  /** written in this order; `data` may be a function so only one tensor's bytes are held at a time */
  tensors: TensorToWrite[]
  /** tensor data alignment, a power of two (default 32); written as general.alignment when not 32 */
  alignment?: number
  signal?: AbortSignal
}

/** Growable little-endian byte builder for the header. */
class ByteBuilder {
  private buf = new Uint8Array(1 << 16)
  private view = new DataView(this.buf.buffer)
  length = 0
  private grow (n: number): void {
    if (this.length + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.length + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.length))
    this.buf = next
    this.view = new DataView(next.buffer)
  }

  u8 (v: number): void { this.grow(1); this.view.setUint8(this.length, v); this.length += 1 }
  i8 (v: number): void { this.grow(1); this.view.setInt8(this.length, v); this.length += 1 }
  u16 (v: number): void { this.grow(2); this.view.setUint16(this.length, v, true); this.length += 2 }
  i16 (v: number): void { this.grow(2); this.view.setInt16(this.length, v, true); this.length += 2 }
  u32 (v: number): void { this.grow(4); this.view.setUint32(this.length, v, true); this.length += 4 }
  i32 (v: number): void { this.grow(4); this.view.setInt32(this.length, v, true); this.length += 4 }
  u64 (v: bigint): void { this.grow(8); this.view.setBigUint64(this.length, v, true); this.length += 8 }
  i64 (v: bigint): void { this.grow(8); this.view.setBigInt64(this.length, v, true); this.length += 8 }
  f32 (v: number): void { this.grow(4); this.view.setFloat32(this.length, v, true); this.length += 4 }
  f64 (v: number): void { this.grow(8); this.view.setFloat64(this.length, v, true); this.length += 8 }
  bytes (b: Uint8Array): void { this.grow(b.length); this.buf.set(b, this.length); this.length += b.length }
  string (s: string): void {
    const b = new TextEncoder().encode(s)
    this.u64(BigInt(b.length))
    this.bytes(b)
  }

  result (): Uint8Array { return this.buf.subarray(0, this.length) }
}

function checkedInt (key: string, type: GgufScalarType, v: unknown, min: number, max: number): number {
  const n = typeof v === 'bigint' ? Number(v) : v
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new Error(`GGUF metadata ${key}: ${String(v)} is not a valid ${type}`)
  }
  return n
}

function checkedBig (key: string, type: GgufScalarType, v: unknown, min: bigint, max: bigint): bigint {
  let b: bigint
  if (typeof v === 'bigint') b = v
  else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v)
  else throw new Error(`GGUF metadata ${key}: ${String(v)} is not a valid ${type}`)
  if (b < min || b > max) throw new Error(`GGUF metadata ${key}: ${b} is out of range for ${type}`)
  return b
}

function writeScalar (out: ByteBuilder, key: string, type: GgufScalarType, v: unknown): void {
  switch (type) {
    case 'u8': out.u8(checkedInt(key, type, v, 0, 0xff)); break
    case 'i8': out.i8(checkedInt(key, type, v, -0x80, 0x7f)); break
    case 'u16': out.u16(checkedInt(key, type, v, 0, 0xffff)); break
    case 'i16': out.i16(checkedInt(key, type, v, -0x8000, 0x7fff)); break
    case 'u32': out.u32(checkedInt(key, type, v, 0, 0xffffffff)); break
    case 'i32': out.i32(checkedInt(key, type, v, -0x80000000, 0x7fffffff)); break
    case 'u64': out.u64(checkedBig(key, type, v, 0n, 0xffffffffffffffffn)); break
    case 'i64': out.i64(checkedBig(key, type, v, -0x8000000000000000n, 0x7fffffffffffffffn)); break
    case 'f32':
    case 'f64':
      if (typeof v !== 'number') throw new Error(`GGUF metadata ${key}: ${String(v)} is not a number`)
      if (type === 'f32') out.f32(v); else out.f64(v)
      break
    case 'bool':
      if (typeof v !== 'boolean') throw new Error(`GGUF metadata ${key}: ${String(v)} is not a boolean`)
      out.u8(v ? 1 : 0)
      break
    case 'string':
      if (typeof v !== 'string') throw new Error(`GGUF metadata ${key}: ${String(v)} is not a string`)
      out.string(v)
      break
    default:
      throw new Error(`GGUF metadata ${key}: unknown value type '${String(type)}'`)
  }
}

/** The header bytes (magic .. tensor infos, without the padding to the data section) and each tensor's data offset. */
export function encodeGgufHeader (options: WriteGgufOptions): { header: Uint8Array, offsets: number[], byteLengths: number[] } {
  const alignment = options.alignment ?? GGUF_DEFAULT_ALIGNMENT
  if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
    throw new Error(`GGUF alignment must be a power of two, got ${alignment}`)
  }
  const metadata = [...options.metadata]
  const keys = new Set<string>()
  for (const entry of metadata) {
    if (keys.has(entry.key)) throw new Error(`GGUF metadata key ${entry.key} given twice`)
    keys.add(entry.key)
  }
  const given = metadata.find((e) => e.key === 'general.alignment')
  if (given !== undefined && Number(given.value) !== alignment) {
    throw new Error(`general.alignment ${String(given.value)} disagrees with the alignment option ${alignment}`)
  }
  if (given === undefined && alignment !== GGUF_DEFAULT_ALIGNMENT) {
    metadata.push({ key: 'general.alignment', type: 'u32', value: alignment })
  }

  const out = new ByteBuilder()
  out.u32(GGUF_MAGIC)
  out.u32(3)
  out.u64(BigInt(options.tensors.length))
  out.u64(BigInt(metadata.length))
  for (const entry of metadata) {
    out.string(entry.key)
    if (entry.type === 'array') {
      if (!(entry.itemType in GGUF_VALUE_TYPE)) throw new Error(`GGUF metadata ${entry.key}: unknown item type '${entry.itemType}'`)
      out.u32(GGUF_VALUE_TYPE.array)
      out.u32(GGUF_VALUE_TYPE[entry.itemType])
      out.u64(BigInt(entry.value.length))
      for (let i = 0; i < entry.value.length; i++) writeScalar(out, entry.key, entry.itemType, entry.value[i])
    } else {
      if (!(entry.type in GGUF_VALUE_TYPE)) throw new Error(`GGUF metadata ${entry.key}: unknown value type '${String(entry.type)}'`)
      out.u32(GGUF_VALUE_TYPE[entry.type])
      writeScalar(out, entry.key, entry.type, entry.value)
    }
  }
  const offsets: number[] = []
  const byteLengths: number[] = []
  const names = new Set<string>()
  let offset = 0
  for (const t of options.tensors) {
    if (names.has(t.name)) throw new Error(`tensor ${t.name} given twice`)
    names.add(t.name)
    if (t.shape.length < 1 || t.shape.length > 4 || t.shape.some((d) => !Number.isInteger(d) || d < 1)) {
      throw new Error(`tensor ${t.name}: GGUF needs 1 to 4 positive dims, got [${t.shape.join(', ')}]`)
    }
    const info = DTYPE_INFO[t.dtype]
    if (info === undefined) throw new Error(`tensor ${t.name}: unsupported dtype '${String(t.dtype)}'`)
    const byteLength = tensorBytes(t.dtype, t.shape)
    out.string(t.name)
    out.u32(t.shape.length)
    for (let d = t.shape.length - 1; d >= 0; d--) out.u64(BigInt(t.shape[d]))
    out.u32(info.ggmlType)
    out.u64(BigInt(offset))
    offsets.push(offset)
    byteLengths.push(byteLength)
    offset += Math.ceil(byteLength / alignment) * alignment
  }
  return { header: out.result(), offsets, byteLengths }
}

/** Write a GGUF v3 file: header, padding to `alignment`, then each tensor's bytes padded to `alignment`. */
export async function writeGguf (path: string, options: WriteGgufOptions): Promise<void> {
  const alignment = options.alignment ?? GGUF_DEFAULT_ALIGNMENT
  const { header, byteLengths } = encodeGgufHeader(options)
  const handle = await open(path, 'w')
  try {
    await writeAll(handle, header)
    const pad = (n: number): Uint8Array => new Uint8Array((alignment - (n % alignment)) % alignment)
    await writeAll(handle, pad(header.length))
    for (let i = 0; i < options.tensors.length; i++) {
      options.signal?.throwIfAborted()
      const t = options.tensors[i]
      const data = await tensorDataOf(t)
      if (data.length !== byteLengths[i]) {
        throw new Error(`tensor ${t.name}: ${t.dtype} [${t.shape.join(', ')}] needs ${byteLengths[i]} bytes, data has ${data.length}`)
      }
      await writeAll(handle, data)
      await writeAll(handle, pad(data.length))
    }
  } finally {
    await handle.close()
  }
}
