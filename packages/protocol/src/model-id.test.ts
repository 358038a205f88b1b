import { CID } from 'multiformats/cid'
import { describe, expect, it } from 'vitest'
import { MalformedMessageError } from './errors.js'
import { canonicalJson, computeModelId, modelCid, type WeightsManifestEntry } from './model-id.js'
import { MODEL_ID_PATTERN } from './common.js'

const config = { architecture: 'llama', hidden_size: 64, n_layers: 2, rope: { theta: 10000, scaling: null } }
const manifest: WeightsManifestEntry[] = [
  { name: 'blk.0.attn_q.weight', dtype: 'f16', shape: [64, 64], sha256: 'a'.repeat(64) },
  { name: 'blk.1.attn_q.weight', dtype: 'f16', shape: [64, 64], sha256: 'b'.repeat(64) },
  { name: 'token_embd.weight', dtype: 'q8_0', shape: [64, 100], byteLength: 6800 }
]

describe('computeModelId', () => {
  it('is a stable base32 sha256 usable as a DHT key segment', () => {
    const id = computeModelId({ config, manifest })
    expect(id).toMatch(/^[a-z2-7]{52}$/)
    expect(id).toMatch(MODEL_ID_PATTERN)
    expect(computeModelId({ config, manifest })).toBe(id)
  })

  it('ignores key order, manifest order and hex case', () => {
    const id = computeModelId({ config, manifest })
    const reordered = { rope: { scaling: null, theta: 10000 }, n_layers: 2, hidden_size: 64, architecture: 'llama' }
    const manifest2 = [manifest[2], { ...manifest[1], sha256: 'B'.repeat(64) }, manifest[0]]
    expect(computeModelId({ config: reordered, manifest: manifest2 })).toBe(id)
  })

  it('changes with the weights, the config or a dtype', () => {
    const id = computeModelId({ config, manifest })
    const finetuned = manifest.map((e, i) => i === 0 ? { ...e, sha256: 'c'.repeat(64) } : e)
    expect(computeModelId({ config, manifest: finetuned })).not.toBe(id)
    expect(computeModelId({ config: { ...config, hidden_size: 65 }, manifest })).not.toBe(id)
    expect(computeModelId({ config, manifest: manifest.map(e => ({ ...e, dtype: 'f32' })) })).not.toBe(id)
  })

  it('rejects incomplete or ambiguous manifests', () => {
    const bad: WeightsManifestEntry[][] = [
      [{ name: 'x', dtype: 'f16', shape: [1] }],
      [{ name: 'x', dtype: 'f16', shape: [1], sha256: 'zz' }],
      [{ name: 'x', dtype: 'f16', shape: [-1], byteLength: 2 }],
      [{ name: '', dtype: 'f16', shape: [1], byteLength: 2 }],
      [manifest[0], { ...manifest[0] }]
    ]
    for (const m of bad) expect(() => computeModelId({ config, manifest: m })).toThrow(MalformedMessageError)
    expect(() => computeModelId({ config: { x: NaN }, manifest })).toThrow(MalformedMessageError)
  })
})

describe('canonicalJson', () => {
  it('sorts keys at every level and omits undefined fields', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: undefined } })).toBe('{"a":{"d":[1,{"y":2,"z":1}]},"b":1}')
  })

  it('rejects values JSON cannot represent', () => {
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    for (const v of [Infinity, 1n, () => 1, new Float32Array(1), new Date(0), [undefined], cyclic]) {
      expect(() => canonicalJson(v)).toThrow(MalformedMessageError)
    }
  })
})

describe('modelCid', () => {
  it('is a CIDv1 raw sha256, deterministic per model id', () => {
    const cid = modelCid('abc')
    expect(cid.version).toBe(1)
    expect(cid.code).toBe(0x55)
    expect(cid.multihash.code).toBe(0x12)
    expect(cid.multihash.digest.length).toBe(32)
    expect(CID.parse(cid.toString()).equals(modelCid('abc'))).toBe(true)
    expect(modelCid('abd').equals(cid)).toBe(false)
    expect(() => modelCid('a/b')).toThrow(MalformedMessageError)
  })
})
