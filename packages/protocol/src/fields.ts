import { MalformedMessageError } from './errors.js'

// Field checkers shared by the schemas. Each takes the decoded value and a dotted path for the error text.

export type Fields = Record<string, unknown>

export function expectObject (value: unknown, path: string): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || ArrayBuffer.isView(value)) {
    throw new MalformedMessageError(`${path} must be a map, got ${describe(value)}`)
  }
  return value as Fields
}

/** Own property only: a decoded map never reaches into Object.prototype. */
export function field (obj: Fields, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(obj, key) ? obj[key] : undefined
}

export function expectString (value: unknown, path: string, maxLength: number, pattern?: RegExp): string {
  if (typeof value !== 'string') throw new MalformedMessageError(`${path} must be a string, got ${describe(value)}`)
  if (value.length > maxLength) {
    throw new MalformedMessageError(`${path} is ${value.length} characters long, limit is ${maxLength}`)
  }
  if (pattern !== undefined && !pattern.test(value)) {
    throw new MalformedMessageError(`${path} ${JSON.stringify(value.slice(0, 64))} does not match ${pattern}`)
  }
  return value
}

export function expectInt (value: unknown, path: string, min: number, max: number = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw new MalformedMessageError(`${path} must be a safe integer, got ${describe(value)}`)
  }
  if (value < min || value > max) throw new MalformedMessageError(`${path} = ${value} is outside [${min}, ${max}]`)
  return value
}

export function expectBoolean (value: unknown, path: string): boolean {
  if (typeof value !== 'boolean') throw new MalformedMessageError(`${path} must be a boolean, got ${describe(value)}`)
  return value
}

export function expectNumber (value: unknown, path: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new MalformedMessageError(`${path} must be a finite number, got ${describe(value)}`)
  }
  if (value < min || value > max) throw new MalformedMessageError(`${path} = ${value} is outside [${min}, ${max}]`)
  return value
}

export function expectBytes (value: unknown, path: string, maxLength: number): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new MalformedMessageError(`${path} must be bytes, got ${describe(value)}`)
  if (value.length > maxLength) {
    throw new MalformedMessageError(`${path} is ${value.length} bytes long, limit is ${maxLength}`)
  }
  return value
}

export function expectArray (value: unknown, path: string, minLength: number, maxLength: number): unknown[] {
  if (!Array.isArray(value)) throw new MalformedMessageError(`${path} must be an array, got ${describe(value)}`)
  if (value.length < minLength || value.length > maxLength) {
    throw new MalformedMessageError(`${path} has ${value.length} elements, expected ${minLength}..${maxLength}`)
  }
  return value
}

export function expectOneOf<T extends string> (value: unknown, path: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new MalformedMessageError(`${path} must be one of ${allowed.join('|')}, got ${describe(value)}`)
  }
  return value as T
}

export function optional<T> (value: unknown, check: (value: unknown) => T): T | undefined {
  return value === undefined || value === null ? undefined : check(value)
}

export function describe (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return `array(${value.length})`
  if (value instanceof Uint8Array) return `bytes(${value.length})`
  if (ArrayBuffer.isView(value)) return value.constructor.name
  if (typeof value === 'string') return `string(${value.length})`
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return `${typeof value} ${String(value)}`
  }
  return typeof value
}
