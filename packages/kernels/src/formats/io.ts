/** Positional file reads and sequential writes shared by the GGUF and safetensors code. */
import type { FileHandle } from 'node:fs/promises'
import type { DType } from '../types.js'

/** Largest single read: keeps each read well under Node's 2 GiB limit and lets an abort land between chunks. */
const READ_CHUNK_BYTES = 64 * 1024 * 1024

/** Bytes and reads a model source did from disk, so tests and callers can see that partial loading is partial. */
export interface ReadStats {
  bytesRead: number
  reads: number
}

/**
 * Read exactly `length` bytes at `offset` into a fresh buffer; throws `truncated()`'s error when the file ends early
 * and the signal's reason when aborted.
 */
export async function readExact (handle: FileHandle, offset: number, length: number,
  options: { signal?: AbortSignal, stats?: ReadStats, what?: string } = {}): Promise<Uint8Array> {
  const out = new Uint8Array(length)
  let done = 0
  while (done < length) {
    options.signal?.throwIfAborted()
    const want = Math.min(READ_CHUNK_BYTES, length - done)
    const { bytesRead } = await handle.read(out, done, want, offset + done)
    if (options.stats !== undefined) {
      options.stats.bytesRead += bytesRead
      options.stats.reads++
    }
    if (bytesRead === 0) {
      throw new Error(`file ended at byte ${offset + done} while reading ${options.what ?? 'data'} (${length} bytes at ${offset})`)
    }
    done += bytesRead
  }
  options.signal?.throwIfAborted()
  return out
}

/** Write all of `data` at the handle's current position (sequential file writes). */
export async function writeAll (handle: FileHandle, data: Uint8Array): Promise<void> {
  let done = 0
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done)
    done += bytesWritten
  }
}

/** A tensor to write. `data` may be produced on demand, so writers hold one tensor's bytes at a time. */
export interface TensorToWrite {
  name: string
  dtype: DType
  /** torch order, outermost first */
  shape: number[]
  data: Uint8Array | (() => Uint8Array | Promise<Uint8Array>)
}

export async function tensorDataOf (tensor: TensorToWrite): Promise<Uint8Array> {
  return typeof tensor.data === 'function' ? await tensor.data() : tensor.data
}

/**
 * Sequential little-endian reader over a file, buffered: `ensure(n)` pulls at least n bytes into the buffer, then the
 * sync getters consume them. Every read is checked against the file size, so a truncated file reports where it ended.
 */
export class BufferedFileReader {
  private buffer = new Uint8Array(0)
  private view = new DataView(this.buffer.buffer)
  private start = 0 // file offset of buffer[0]
  private pos = 0 // index into buffer
  private end = 0 // valid bytes in buffer

  constructor (
    private readonly handle: FileHandle,
    readonly fileSize: number,
    private readonly corrupt: (message: string) => Error,
    private readonly chunkBytes = 1 << 20,
    private readonly signal?: AbortSignal
  ) {}

  /** current file offset */
  get offset (): number { return this.start + this.pos }

  /** bytes between the current offset and the end of the file */
  get remaining (): number { return this.fileSize - this.offset }

  /** whether n bytes are already buffered (lets hot loops skip an await) */
  has (n: number): boolean { return this.end - this.pos >= n }

  async ensure (n: number, what: string): Promise<void> {
    if (this.end - this.pos >= n) return
    if (n > this.remaining) {
      throw this.corrupt(`file ends at byte ${this.fileSize} inside ${what} (needs ${n} bytes at ${this.offset})`)
    }
    this.signal?.throwIfAborted()
    const keep = this.end - this.pos
    const size = Math.max(n, Math.min(this.chunkBytes, this.remaining))
    const next = new Uint8Array(size)
    next.set(this.buffer.subarray(this.pos, this.end), 0)
    const fileOffset = this.offset
    let filled = keep
    const want = Math.min(size, this.remaining)
    while (filled < want) {
      const { bytesRead } = await this.handle.read(next, filled, want - filled, fileOffset + filled)
      if (bytesRead === 0) throw this.corrupt(`file ended early at byte ${fileOffset + filled} inside ${what}`)
      filled += bytesRead
    }
    this.buffer = next
    this.view = new DataView(next.buffer)
    this.start = fileOffset
    this.pos = 0
    this.end = filled
  }

  u8 (): number { return this.buffer[this.pos++] }
  i8 (): number { return this.view.getInt8(this.pos++) }
  u16 (): number { const v = this.view.getUint16(this.pos, true); this.pos += 2; return v }
  i16 (): number { const v = this.view.getInt16(this.pos, true); this.pos += 2; return v }
  u32 (): number { const v = this.view.getUint32(this.pos, true); this.pos += 4; return v }
  i32 (): number { const v = this.view.getInt32(this.pos, true); this.pos += 4; return v }
  u64 (): bigint { const v = this.view.getBigUint64(this.pos, true); this.pos += 8; return v }
  i64 (): bigint { const v = this.view.getBigInt64(this.pos, true); this.pos += 8; return v }
  f32 (): number { const v = this.view.getFloat32(this.pos, true); this.pos += 4; return v }
  f64 (): number { const v = this.view.getFloat64(this.pos, true); this.pos += 8; return v }
  bytes (n: number): Uint8Array { const v = this.buffer.subarray(this.pos, this.pos + n); this.pos += n; return v }
}
