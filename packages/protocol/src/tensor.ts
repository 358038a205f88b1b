import { MAX_TENSOR_ELEMENTS, MAX_TENSOR_RANK } from './constants.js'
import { InternalError, InvalidTensorError } from './errors.js'
import { describe, expectObject, field } from './fields.js'
import { bf16ToFloat32, f16ToFloat32, float32ToBf16, float32ToF16 } from './float16.js'

/** Element types of wire tensors. Activations may travel as f16/bf16 to halve traffic. */
export type WireDtype = 'f32' | 'f16' | 'bf16'

export const WIRE_DTYPES: readonly WireDtype[] = ['f32', 'f16', 'bf16']

/** Bytes per element of each wire dtype. */
export const DTYPE_BYTES: Readonly<Record<WireDtype, number>> = { f32: 4, f16: 2, bf16: 2 }

/** A tensor on the wire: row-major, little-endian elements. */
export interface WireTensor {
  dtype: WireDtype
  shape: number[]
  data: Uint8Array
}

/** A decoded tensor. */
export interface Tensor {
  data: Float32Array
  shape: number[]
}

export interface TensorLimits {
  /** Largest rank (default MAX_TENSOR_RANK). */
  maxRank?: number
  /** Largest element count (default MAX_TENSOR_ELEMENTS). */
  maxElements?: number
}

export interface DecodeTensorOptions extends TensorLimits {
  /** Accept NaN and +-Inf values (default false: they poison KV caches, so they are rejected). */
  allowNonFinite?: boolean
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

function assertLittleEndian (): void {
  if (!LITTLE_ENDIAN) throw new InternalError('wire tensors need a little-endian host')
}

/** Product of a shape, checking each dimension; throws InvalidTensorError past the limits. */
export function shapeSize (shape: unknown, limits: TensorLimits = {}): number {
  const maxRank = limits.maxRank ?? MAX_TENSOR_RANK
  const maxElements = limits.maxElements ?? MAX_TENSOR_ELEMENTS
  if (!Array.isArray(shape)) throw new InvalidTensorError(`tensor shape must be an array, got ${describe(shape)}`)
  if (shape.length > maxRank) throw new InvalidTensorError(`tensor rank ${shape.length} exceeds ${maxRank}`)
  let size = 1
  for (const dim of shape) {
    if (typeof dim !== 'number' || !Number.isInteger(dim) || dim < 0) {
      throw new InvalidTensorError(`tensor dimension must be an integer >= 0, got ${describe(dim)}`)
    }
    size *= dim
    if (size > maxElements) throw new InvalidTensorError(`tensor of shape [${shape.join(', ')}] exceeds ${maxElements} elements`)
  }
  return size
}

/**
 * Encodes f32 values as a wire tensor of the given dtype (f16/bf16: round to nearest even, NaN preserved).
 * The result owns its bytes.
 */
export function encodeTensor (data: Float32Array, shape: readonly number[], dtype: WireDtype = 'f32'): WireTensor {
  assertLittleEndian()
  const size = shapeSize([...shape])
  if (size !== data.length) {
    throw new InvalidTensorError(`shape [${shape.join(', ')}] holds ${size} elements but data has ${data.length}`)
  }
  let bytes: Uint8Array
  if (dtype === 'f32') {
    bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice()
  } else if (dtype === 'f16') {
    bytes = new Uint8Array(float32ToF16(data).buffer)
  } else if (dtype === 'bf16') {
    bytes = new Uint8Array(float32ToBf16(data).buffer)
  } else {
    throw new InvalidTensorError(`unknown tensor dtype ${describe(dtype)}`)
  }
  return { dtype, shape: [...shape], data: bytes }
}

/**
 * Checks a decoded wire tensor's structure (dtype known, shape integers within limits, byte length matching)
 * without touching its elements, and returns a clean copy of its fields.
 */
export function validateWireTensor (value: unknown, limits: TensorLimits = {}): WireTensor {
  let obj
  try {
    obj = expectObject(value, 'tensor')
  } catch (err) {
    throw new InvalidTensorError((err as Error).message, { cause: err })
  }
  const dtype = field(obj, 'dtype')
  if (typeof dtype !== 'string' || !(WIRE_DTYPES as readonly string[]).includes(dtype)) {
    throw new InvalidTensorError(`unknown tensor dtype ${describe(dtype)}`)
  }
  const shape = field(obj, 'shape')
  const size = shapeSize(shape, limits)
  const data = field(obj, 'data')
  if (!(data instanceof Uint8Array)) throw new InvalidTensorError(`tensor data must be bytes, got ${describe(data)}`)
  const expected = size * DTYPE_BYTES[dtype as WireDtype]
  if (data.length !== expected) {
    throw new InvalidTensorError(
      `tensor ${dtype}[${(shape as number[]).join(', ')}] needs ${expected} bytes, got ${data.length}`)
  }
  return { dtype: dtype as WireDtype, shape: [...(shape as number[])], data }
}

/** Validates a wire tensor and decodes it to a fresh Float32Array (rejecting NaN/Inf unless allowNonFinite). */
export function decodeTensor (value: unknown, options: DecodeTensorOptions = {}): Tensor {
  assertLittleEndian()
  const wire = validateWireTensor(value, options)
  // Copy into a fresh, aligned buffer: the frame's bytes may sit at any offset and must not be aliased.
  // (Uint8Array's slice copies; Buffer's, which msgpackr returns for bin, would not)
  const raw = Uint8Array.prototype.slice.call(wire.data)
  let data: Float32Array
  if (wire.dtype === 'f32') {
    data = new Float32Array(raw.buffer, 0, raw.length / 4)
  } else if (wire.dtype === 'f16') {
    data = f16ToFloat32(new Uint16Array(raw.buffer, 0, raw.length / 2))
  } else {
    data = bf16ToFloat32(new Uint16Array(raw.buffer, 0, raw.length / 2))
  }
  if (options.allowNonFinite !== true) {
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) {
        throw new InvalidTensorError(`tensor element ${i} is ${data[i]}`)
      }
    }
  }
  return { data, shape: wire.shape }
}
