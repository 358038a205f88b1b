import { MAX_BLOCKS, MAX_MODEL_ID_LENGTH } from './constants.js'
import { MalformedMessageError } from './errors.js'
import { expectArray, expectInt, expectString } from './fields.js'

/** Half-open range of transformer block indices [start, end). */
export type BlockRange = [start: number, end: number]

/** Model ids are DHT key segments: letters, digits and `._:-` only (never `/`). */
export const MODEL_ID_PATTERN = /^[A-Za-z0-9._:-]+$/

/** Session ids are 16 random bytes as 32 lowercase hex characters. */
export const SESSION_ID_PATTERN = /^[0-9a-f]{32}$/

/** A fresh random session id (16 bytes, hex). */
export function newSessionId (): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  let hex = ''
  for (const b of bytes) hex += b.toString(16).padStart(2, '0')
  return hex
}

export function expectModelId (value: unknown, path: string): string {
  const id = expectString(value, path, MAX_MODEL_ID_LENGTH, MODEL_ID_PATTERN)
  return id
}

export function expectSessionId (value: unknown, path: string): string {
  return expectString(value, path, 32, SESSION_ID_PATTERN)
}

/** [start, end) with 0 <= start < end <= MAX_BLOCKS. */
export function expectBlockRange (value: unknown, path: string): BlockRange {
  const range = expectArray(value, path, 2, 2)
  const start = expectInt(range[0], `${path}[0]`, 0, MAX_BLOCKS - 1)
  const end = expectInt(range[1], `${path}[1]`, 1, MAX_BLOCKS)
  if (end <= start) throw new MalformedMessageError(`${path} [${start}, ${end}) is empty`)
  return [start, end]
}

/** Throughput advertised by a node, tokens per second per block. */
export interface Throughput {
  /** Decode steps (one token per sequence) through one block, tokens/s. */
  inference: number
  /** Batched forward (prefill) through one block, tokens/s. */
  forward: number
}
