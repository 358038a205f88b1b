import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DTYPES, tensorBytes } from '../quant/index.js'
import type { DType, GgufEntry, Tensor } from '../types.js'
import { encodeGgufHeader, writeGguf } from './gguf-writer.js'
import { readGgufHeader } from './gguf.js'
import { modelConfigFromGguf, specialsFromGguf } from './gguf-config.js'

let dir: string
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'gguf-test-')) })
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

function bytes (n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n)
  let x = seed
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) >>> 0; out[i] = x >>> 24 }
  return out
}

/** shapes whose rows are whole blocks of every dtype */
function tensorsOfEveryDType (): Tensor[] {
  return DTYPES.map((dtype: DType, i) => {
    const shape = i % 2 === 0 ? [3, 256] : [2, 2, 256]
    return { name: `t.${dtype}`, dtype, shape, data: bytes(tensorBytes(dtype, shape), i + 1) }
  })
}

const metadata: GgufEntry[] = [
  { key: 'general.architecture', type: 'string', value: 'llama' },
  { key: 'a.u8', type: 'u8', value: 250 },
  { key: 'a.i8', type: 'i8', value: -5 },
  { key: 'a.u16', type: 'u16', value: 65000 },
  { key: 'a.i16', type: 'i16', value: -30000 },
  { key: 'a.u32', type: 'u32', value: 4000000000 },
  { key: 'a.i32', type: 'i32', value: -2000000000 },
  { key: 'a.u64', type: 'u64', value: 18000000000000000000n },
  { key: 'a.i64', type: 'i64', value: -9000000000000000000n },
  { key: 'a.f32', type: 'f32', value: 0.5 },
  { key: 'a.f64', type: 'f64', value: Math.PI },
  { key: 'a.bool', type: 'bool', value: true },
  { key: 'a.string', type: 'string', value: 'héllo ▁wörld' },
  { key: 'a.strings', type: 'array', itemType: 'string', value: ['x', '', '<0x0A>'] },
  { key: 'a.f32s', type: 'array', itemType: 'f32', value: [1.5, -2, 0] },
  { key: 'a.i32s', type: 'array', itemType: 'i32', value: new Int32Array([1, -1, 7]) },
  { key: 'a.u64s', type: 'array', itemType: 'u64', value: [1n, 2n] },
  { key: 'a.bools', type: 'array', itemType: 'bool', value: [true, false] },
  { key: 'a.empty', type: 'array', itemType: 'u32', value: [] }
]

describe('GGUF reader/writer', () => {
  it('round-trips metadata of every type and tensors of every dtype', async () => {
    const path = join(dir, 'all.gguf')
    const tensors = tensorsOfEveryDType()
    await writeGguf(path, { metadata, tensors })
    const h = await readGgufHeader(path)
    expect(h.version).toBe(3)
    expect(h.alignment).toBe(32)
    expect(h.dataOffset % 32).toBe(0)
    expect(h.metadata).toEqual({
      'general.architecture': 'llama',
      'a.u8': 250, 'a.i8': -5, 'a.u16': 65000, 'a.i16': -30000, 'a.u32': 4000000000, 'a.i32': -2000000000,
      'a.u64': 18000000000000000000n, 'a.i64': -9000000000000000000n, 'a.f32': 0.5, 'a.f64': Math.PI, 'a.bool': true,
      'a.string': 'héllo ▁wörld', 'a.strings': ['x', '', '<0x0A>'], 'a.f32s': [1.5, -2, 0], 'a.i32s': [1, -1, 7],
      'a.u64s': [1n, 2n], 'a.bools': [true, false], 'a.empty': []
    })
    expect(h.metadataTypes.get('a.u64')).toBe('u64')
    expect(h.metadataTypes.get('a.strings')).toBe('array')
    const file = await readFile(path)
    expect(h.tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual(tensors.map((t) => [t.name, t.dtype, t.shape]))
    for (const [i, info] of h.tensors.entries()) {
      expect(info.dims).toEqual([...tensors[i].shape].reverse())
      expect(info.offset % 32).toBe(0)
      expect(info.byteLength).toBe(tensors[i].data.length)
      expect(new Uint8Array(file.subarray(info.offset, info.offset + info.byteLength))).toEqual(tensors[i].data)
    }
  })

  it('writes deterministic bytes and honours a custom alignment', async () => {
    const tensors = tensorsOfEveryDType()
    await writeGguf(join(dir, 'a.gguf'), { metadata, tensors, alignment: 64 })
    await writeGguf(join(dir, 'b.gguf'), { metadata, tensors: tensors.map((t) => ({ ...t, data: () => t.data })), alignment: 64 })
    const [a, b] = [await readFile(join(dir, 'a.gguf')), await readFile(join(dir, 'b.gguf'))]
    expect(a.equals(b)).toBe(true)
    const h = await readGgufHeader(join(dir, 'a.gguf'))
    expect(h.alignment).toBe(64)
    expect(h.metadata['general.alignment']).toBe(64)
    for (const t of h.tensors) expect(t.offset % 64).toBe(0)
  })

  it('rejects bad writer input with one-line errors', async () => {
    await expect(writeGguf(join(dir, 'x.gguf'), { metadata: [], tensors: [{ name: 'w', dtype: 'f32', shape: [4], data: new Uint8Array(15) }] }))
      .rejects.toThrow('tensor w: f32 [4] needs 16 bytes, data has 15')
    expect(() => encodeGgufHeader({ metadata: [{ key: 'k', type: 'u8', value: 300 }], tensors: [] })).toThrow('k: 300 is not a valid u8')
    expect(() => encodeGgufHeader({ metadata: [], tensors: [], alignment: 24 })).toThrow('power of two')
    expect(() => encodeGgufHeader({ metadata: [], tensors: [{ name: 'q', dtype: 'q8_0', shape: [2, 20], data: new Uint8Array(0) }] }))
      .toThrow(/multiple of 32/)
  })
})

describe('corrupt GGUF files', () => {
  let good: Buffer
  beforeAll(async () => {
    const path = join(dir, 'good.gguf')
    await writeGguf(path, { metadata, tensors: tensorsOfEveryDType() })
    good = await readFile(path)
  })
  const variant = async (name: string, data: Uint8Array): Promise<string> => {
    const path = join(dir, name)
    await writeFile(path, data)
    return path
  }

  it('rejects a bad magic and unsupported versions', async () => {
    const bad = Buffer.from(good); bad.write('GGUX', 0, 'latin1')
    await expect(readGgufHeader(await variant('magic.gguf', bad))).rejects.toThrow(/^corrupt GGUF: bad magic/)
    const v1 = Buffer.from(good); v1.writeUInt32LE(1, 4)
    await expect(readGgufHeader(await variant('v1.gguf', v1))).rejects.toThrow('unsupported GGUF version 1')
    const v2 = Buffer.from(good); v2.writeUInt32LE(2, 4)
    expect((await readGgufHeader(await variant('v2.gguf', v2))).version).toBe(2)
  })

  it('rejects every truncation with a corrupt GGUF error', async () => {
    const h = await readGgufHeader(await variant('copy.gguf', good))
    const cuts = [0, 3, 7, 20, 30, 100, 400, 700, h.dataOffset - 1, h.dataOffset + 10, good.length - 1]
    for (const cut of cuts) {
      await expect(readGgufHeader(await variant(`cut${cut}.gguf`, good.subarray(0, cut))), `cut at ${cut}`).rejects.toThrow(/^corrupt GGUF: /)
    }
  })

  it('rejects absurd counts and lengths without allocating them', async () => {
    const count = Buffer.from(good); count.writeBigUInt64LE(1n << 40n, 8)
    await expect(readGgufHeader(await variant('count.gguf', count))).rejects.toThrow(/^corrupt GGUF: tensor count is 1099511627776/)
    const kv = Buffer.from(good); kv.writeBigUInt64LE(1n << 62n, 16)
    await expect(readGgufHeader(await variant('kv.gguf', kv))).rejects.toThrow(/^corrupt GGUF: metadata count/)
    const keyLen = Buffer.from(good); keyLen.writeBigUInt64LE(1n << 50n, 24)
    await expect(readGgufHeader(await variant('key.gguf', keyLen))).rejects.toThrow(/^corrupt GGUF: key of metadata entry 0 has length/)
    const type = Buffer.from(good); type.writeUInt32LE(99, 24 + 8 + 'general.architecture'.length)
    await expect(readGgufHeader(await variant('type.gguf', type))).rejects.toThrow('corrupt GGUF: type of general.architecture has unknown value type 99')
  })

  it('names the tensor of an unsupported ggml type and checks data offsets', async () => {
    const path = join(dir, 'one.gguf')
    await writeGguf(path, { metadata: [], tensors: [{ name: 'blk.0.w', dtype: 'f32', shape: [8], data: new Uint8Array(32) }] })
    const one = await readFile(path)
    // tensor info: header 24 + name (8 + 7) + n_dims 4 + dim 8, then type u32 and offset u64
    const typeAt = 24 + 8 + 7 + 4 + 8
    const q41 = Buffer.from(one); q41.writeUInt32LE(3, typeAt)
    await expect(readGgufHeader(await variant('q41.gguf', q41))).rejects.toThrow(/tensor blk\.0\.w: unsupported ggml type 3 \(Q4_1\)/)
    const misaligned = Buffer.from(one); misaligned.writeBigUInt64LE(4n, typeAt + 4)
    await expect(readGgufHeader(await variant('mis.gguf', misaligned))).rejects.toThrow('corrupt GGUF: tensor blk.0.w offset 4 is not a multiple of the alignment 32')
    const past = Buffer.from(one); past.writeBigUInt64LE(64n, typeAt + 4)
    await expect(readGgufHeader(await variant('past.gguf', past))).rejects.toThrow(/^corrupt GGUF: tensor blk\.0\.w .* runs past the end of the file/)
  })
})

describe('modelConfigFromGguf', () => {
  const llamaMeta = (arch: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    'general.architecture': arch,
    'general.name': 'm',
    [`${arch}.block_count`]: 2,
    [`${arch}.embedding_length`]: 64,
    [`${arch}.attention.head_count`]: 4,
    [`${arch}.attention.head_count_kv`]: 2,
    [`${arch}.feed_forward_length`]: 160,
    [`${arch}.context_length`]: 256,
    [`${arch}.attention.layer_norm_rms_epsilon`]: 1e-5,
    [`${arch}.rope.dimension_count`]: 16,
    ...extra
  })
  const info = (name: string, shape: number[]): { name: string, dtype: DType, shape: number[], byteLength: number } =>
    ({ name, dtype: 'f32', shape, byteLength: 4 * shape.reduce((a, b) => a * b, 1) })
  const base = [info('token_embd.weight', [500, 64]), info('output.weight', [500, 64])]

  it('reads llama and mistral with adjacent RoPE and defaults', () => {
    for (const arch of ['llama', 'mistral']) {
      expect(modelConfigFromGguf(llamaMeta(arch), base)).toEqual({
        architecture: arch, name: 'm', nLayers: 2, dim: 64, nHeads: 4, nKvHeads: 2, headDim: 16, ffnDim: 160, vocabSize: 500,
        contextLength: 256, rmsNormEps: 1e-5, ropeTheta: 10000, ropeStyle: 'adjacent', tiedEmbeddings: false, qkvBias: false
      })
    }
  })

  it('reads qwen2 (halves RoPE, qkv bias, tied), 64-bit counts and linear RoPE scaling', () => {
    const c = modelConfigFromGguf(llamaMeta('qwen2', { 'qwen2.block_count': 2n, 'qwen2.rope.freq_base': 1e6 }),
      [info('token_embd.weight', [500, 64]), info('blk.0.attn_q.bias', [64])])
    expect(c).toMatchObject({ architecture: 'qwen2', ropeStyle: 'halves', qkvBias: true, tiedEmbeddings: true, ropeTheta: 1e6, nLayers: 2 })
    const linear = modelConfigFromGguf(llamaMeta('llama', { 'llama.rope.scaling.type': 'linear', 'llama.rope.scaling.factor': 4 }), base)
    expect(linear.ropeScaling).toEqual({ type: 'linear', factor: 4 })
  })

  it('leaves Llama 3 scaling to the rope_freqs.weight tensor', () => {
    const c = modelConfigFromGguf(llamaMeta('llama', { 'llama.rope.freq_base': 500000 }), [...base, info('rope_freqs.weight', [8])])
    expect(c.ropeScaling).toBeUndefined()
    expect(c.ropeTheta).toBe(500000)
  })

  it('rejects unsupported and incomplete metadata clearly', () => {
    expect(() => modelConfigFromGguf(llamaMeta('gpt2'), base)).toThrow("unsupported GGUF architecture 'gpt2' (supported: llama, mistral, qwen2)")
    expect(() => modelConfigFromGguf({ ...llamaMeta('llama'), 'llama.block_count': undefined }, base)).toThrow('corrupt GGUF: metadata has no llama.block_count')
    expect(() => modelConfigFromGguf(llamaMeta('llama'), [])).toThrow('corrupt GGUF: no token_embd.weight tensor')
    expect(() => modelConfigFromGguf(llamaMeta('llama', { 'llama.rope.scaling.type': 'yarn' }), base)).toThrow("unsupported GGUF RoPE scaling type 'yarn'")
    expect(() => modelConfigFromGguf(llamaMeta('llama', { 'llama.rope.dimension_count': 8 }), base)).toThrow('partial RoPE')
  })

  it('reads tokenizer specials with llama.cpp defaults', () => {
    expect(specialsFromGguf({ 'tokenizer.ggml.model': 'llama', 'tokenizer.ggml.bos_token_id': 1, 'tokenizer.ggml.eos_token_id': 2 }))
      .toEqual({ bosTokenId: 1, eosTokenId: 2, eosTokenIds: [2], addBos: true, addEos: false })
    expect(specialsFromGguf({
      'tokenizer.ggml.model': 'gpt2', 'tokenizer.ggml.eos_token_id': 9, 'tokenizer.ggml.eot_token_id': 7, 'tokenizer.chat_template': 't'
    })).toEqual({ eosTokenId: 9, eosTokenIds: [7, 9], addBos: false, addEos: false, chatTemplate: 't' })
  })
})
