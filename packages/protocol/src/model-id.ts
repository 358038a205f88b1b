import { sha256 } from '@noble/hashes/sha2.js'
import { base32 } from 'multiformats/bases/base32'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { create as createDigest } from 'multiformats/hashes/digest'
import { MalformedMessageError } from './errors.js'
import { expectModelId } from './common.js'

/** One tensor of a model's weights, as listed by its loader. */
export interface WeightsManifestEntry {
  /** Tensor name in the file, e.g. `blk.0.attn_q.weight`. */
  name: string
  /** Stored dtype, e.g. `f16`, `q8_0`. */
  dtype: string
  shape: readonly number[]
  /** Hex sha256 of the stored bytes: what makes different weights of the same shapes distinct. */
  sha256?: string
  /** Stored size, bytes (weaker than sha256: only tells apart differently quantized files). */
  byteLength?: number
}

export interface ModelIdentity {
  /** The model's configuration (architecture hyper-parameters), any JSON-like object. */
  config: object
  /** Every weight tensor; order does not matter (entries are sorted by name). */
  manifest: readonly WeightsManifestEntry[]
}

const SHA256_MULTIHASH_CODE = 0x12
const MODEL_ID_DOMAIN = 'swarm-model-id/1'
const MODEL_CID_DOMAIN = '/swarm/model/'

/**
 * Model id: lowercase base32 (52 characters) of sha256 over the canonical JSON (sorted keys) of the config and the
 * weights manifest, so two models of the same name but different weights never share an id.
 */
export function computeModelId (identity: ModelIdentity): string {
  const manifest = identity.manifest.map(normalizeEntry).sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  for (let i = 1; i < manifest.length; i++) {
    if (manifest[i].name === manifest[i - 1].name) {
      throw new MalformedMessageError(`manifest lists tensor ${manifest[i].name} twice`)
    }
  }
  const text = canonicalJson({ domain: MODEL_ID_DOMAIN, config: identity.config, manifest })
  return base32.baseEncode(sha256(new TextEncoder().encode(text)))
}

/** CID v1 (raw, sha256) naming a model in DHT provider records. */
export function modelCid (modelId: string): CID {
  expectModelId(modelId, 'modelId')
  const digest = sha256(new TextEncoder().encode(MODEL_CID_DOMAIN + modelId))
  return CID.createV1(raw.code, createDigest(SHA256_MULTIHASH_CODE, digest))
}

/**
 * JSON with object keys sorted at every level, no whitespace; undefined object fields are omitted. Throws on
 * values JSON cannot represent faithfully (NaN, Inf, bigint, functions, symbols, typed arrays, cycles).
 */
export function canonicalJson (value: unknown): string {
  return canonical(value, 'value', new Set())
}

function canonical (value: unknown, path: string, seen: Set<object>): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new MalformedMessageError(`${path} is ${value}, not representable in JSON`)
    return JSON.stringify(value)
  }
  if (typeof value !== 'object') throw new MalformedMessageError(`${path} has unsupported type ${typeof value}`)
  if (ArrayBuffer.isView(value)) throw new MalformedMessageError(`${path} is a ${value.constructor.name}; use a plain array`)
  if (seen.has(value)) throw new MalformedMessageError(`${path} is a cycle`)
  seen.add(value)
  let out: string
  if (Array.isArray(value)) {
    out = '[' + value.map((v, i) => {
      if (v === undefined) throw new MalformedMessageError(`${path}[${i}] is undefined`)
      return canonical(v, `${path}[${i}]`, seen)
    }).join(',') + ']'
  } else {
    const proto = Object.getPrototypeOf(value)
    if (proto !== Object.prototype && proto !== null) {
      throw new MalformedMessageError(`${path} is a ${(value as object).constructor?.name ?? 'non-plain object'}`)
    }
    const entries = Object.keys(value).sort()
      .filter(k => (value as Record<string, unknown>)[k] !== undefined)
      .map(k => JSON.stringify(k) + ':' + canonical((value as Record<string, unknown>)[k], `${path}.${k}`, seen))
    out = '{' + entries.join(',') + '}'
  }
  seen.delete(value)
  return out
}

function normalizeEntry (entry: WeightsManifestEntry, index: number): WeightsManifestEntry {
  const path = `manifest[${index}]`
  if (typeof entry !== 'object' || entry === null) throw new MalformedMessageError(`${path} is not an object`)
  if (typeof entry.name !== 'string' || entry.name.length === 0) throw new MalformedMessageError(`${path}.name must be a non-empty string`)
  if (typeof entry.dtype !== 'string' || entry.dtype.length === 0) throw new MalformedMessageError(`${path}.dtype must be a non-empty string`)
  if (!Array.isArray(entry.shape) || !entry.shape.every(d => Number.isSafeInteger(d) && d >= 0)) {
    throw new MalformedMessageError(`${path}.shape must be an array of integers >= 0`)
  }
  if (entry.sha256 === undefined && entry.byteLength === undefined) {
    throw new MalformedMessageError(`${path} (${entry.name}) needs sha256 or byteLength`)
  }
  const out: WeightsManifestEntry = { name: entry.name, dtype: entry.dtype, shape: [...entry.shape] }
  if (entry.sha256 !== undefined) {
    if (typeof entry.sha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(entry.sha256)) {
      throw new MalformedMessageError(`${path}.sha256 must be 64 hex characters`)
    }
    out.sha256 = entry.sha256.toLowerCase()
  }
  if (entry.byteLength !== undefined) {
    if (!Number.isSafeInteger(entry.byteLength) || entry.byteLength < 0) {
      throw new MalformedMessageError(`${path}.byteLength must be an integer >= 0`)
    }
    out.byteLength = entry.byteLength
  }
  return out
}
