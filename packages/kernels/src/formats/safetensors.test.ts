import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Tensor } from '../types.js'
import { readSafetensorsHeader, readSafetensorsTensor, writeSafetensors } from './safetensors.js'

let dir: string
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'st-test-')) })
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

const bytes = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7) & 0xff)
const tensors: Tensor[] = [
  { name: 'model.norm.weight', dtype: 'f32', shape: [5], data: bytes(20, 1) },
  { name: 'a.f16', dtype: 'f16', shape: [3, 3], data: bytes(18, 2) },
  { name: 'b.bf16', dtype: 'bf16', shape: [2, 1, 3], data: bytes(12, 3) }
]

/** a file with a hand-written header */
async function withHeader (name: string, header: unknown, dataBytes: number, rawHeader?: string): Promise<string> {
  const text = rawHeader ?? JSON.stringify(header)
  const body = Buffer.from(text)
  const len = Buffer.alloc(8); len.writeBigUInt64LE(BigInt(body.length))
  const path = join(dir, name)
  await writeFile(path, Buffer.concat([len, body, Buffer.alloc(dataBytes)]))
  return path
}

describe('safetensors', () => {
  it('round-trips f32, f16 and bf16 tensors with HF header layout', async () => {
    const path = join(dir, 'rt.safetensors')
    await writeSafetensors(path, tensors, { format: 'pt' })
    const file = await readFile(path)
    const headerLen = Number(file.readBigUInt64LE(0))
    expect(headerLen % 8).toBe(0)
    const text = file.subarray(8, 8 + headerLen).toString()
    expect(text.startsWith('{"__metadata__":{"format":"pt"},"a.f16":')).toBe(true)
    const json = text.trimEnd()
    expect(text.length - json.length).toBe((8 - (Buffer.byteLength(json) % 8)) % 8)
    expect(text.slice(json.length)).toMatch(/^ *$/)
    const h = await readSafetensorsHeader(path)
    expect(h.metadata).toEqual({ format: 'pt' })
    expect(h.tensors.map((t) => t.name)).toEqual(['a.f16', 'b.bf16', 'model.norm.weight'])
    const handle = await open(path, 'r')
    try {
      for (const t of tensors) {
        const info = h.tensors.find((i) => i.name === t.name)!
        expect([info.dtype, info.shape]).toEqual([t.dtype, t.shape])
        expect(await readSafetensorsTensor(handle, info)).toEqual(t.data)
      }
    } finally { await handle.close() }
  })

  it('rejects unsupported dtypes on write and read', async () => {
    await expect(writeSafetensors(join(dir, 'q.safetensors'), [{ name: 'w', dtype: 'q8_0', shape: [1, 32], data: new Uint8Array(34) }]))
      .rejects.toThrow('tensor w: safetensors supports f32, f16, bf16, not q8_0')
    const path = await withHeader('i64.safetensors', { w: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, 16)
    await expect(readSafetensorsHeader(path)).rejects.toThrow(/tensor w in .* has unsupported safetensors dtype I64 \(supported: F32, F16, BF16\)/)
  })

  it('rejects corrupt and truncated files with one-line errors', async () => {
    const good = join(dir, 'good.safetensors')
    await writeSafetensors(good, tensors)
    const file = await readFile(good)
    const cut = join(dir, 'cut.safetensors')
    await writeFile(cut, file.subarray(0, file.length - 1))
    await expect(readSafetensorsHeader(cut)).rejects.toThrow(/^corrupt safetensors: .*tensor model\.norm\.weight ends at data byte 50, the file holds 49; truncated\?/)
    await writeFile(cut, file.subarray(0, 5))
    await expect(readSafetensorsHeader(cut)).rejects.toThrow(/too short for the header length/)
    await writeFile(cut, file.subarray(0, 20))
    await expect(readSafetensorsHeader(cut)).rejects.toThrow(/header length \d+ runs past the end of the file/)
    await expect(readSafetensorsHeader(await withHeader('json.safetensors', null, 0, '{"a": '))).rejects.toThrow(/header is not valid JSON/)
    await expect(readSafetensorsHeader(await withHeader('arr.safetensors', [1], 0))).rejects.toThrow(/header is not a JSON object/)
    await expect(readSafetensorsHeader(await withHeader('len.safetensors', { w: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, 8)))
      .rejects.toThrow('tensor w of F32 [2] needs 8 bytes, data_offsets [0, 4] hold 4')
    await expect(readSafetensorsHeader(await withHeader('ov.safetensors', {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] }
    }, 12))).rejects.toThrow('tensors a and b overlap')
    await expect(readSafetensorsHeader(await withHeader('shape.safetensors', { w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4)))
      .rejects.toThrow('tensor w has a bad shape [-1]')
    await expect(readSafetensorsHeader(await withHeader('meta.safetensors', { __metadata__: { a: 1 } }, 0)))
      .rejects.toThrow('__metadata__.a is not a string')
  })
})
