import type { DType } from '../types.js'
import { QuantLayoutError, UnsupportedDTypeError } from './errors.js'

export interface DTypeInfo {
  /** ggml's `enum ggml_type` value, as stored in GGUF tensor infos */
  ggmlType: number
  /** elements per block along a row */
  blockSize: number
  /** bytes per block */
  blockBytes: number
}

/** Block geometry of every storage dtype, identical to ggml's type traits. */
export const DTYPE_INFO: Readonly<Record<DType, Readonly<DTypeInfo>>> = {
  f32: { ggmlType: 0, blockSize: 1, blockBytes: 4 },
  f16: { ggmlType: 1, blockSize: 1, blockBytes: 2 },
  q4_0: { ggmlType: 2, blockSize: 32, blockBytes: 18 },
  q8_0: { ggmlType: 8, blockSize: 32, blockBytes: 34 },
  q4_K: { ggmlType: 12, blockSize: 256, blockBytes: 144 },
  q6_K: { ggmlType: 14, blockSize: 256, blockBytes: 210 },
  bf16: { ggmlType: 30, blockSize: 1, blockBytes: 2 }
}

/** Every supported dtype. */
export const DTYPES: readonly DType[] = Object.keys(DTYPE_INFO) as DType[]

/** QK_K: elements per K-quant super-block (q4_K, q6_K, q8_K). */
export const QK_K = 256
/** Elements per q4_0 / q8_0 block. */
export const QK8_0 = 32
/** Bytes of ggml's block_q8_K: f32 d, 256 int8 quants, 16 int16 sums of 16 quants. */
export const Q8_K_BLOCK_BYTES = 4 + QK_K + 2 * (QK_K / 16)

const BY_GGML_TYPE = new Map<number, DType>(DTYPES.map((d) => [DTYPE_INFO[d].ggmlType, d]))

/** Names of ggml types we do not support, for readable errors. */
const GGML_TYPE_NAMES: Record<number, string> = {
  3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 9: 'Q8_1', 10: 'Q2_K', 11: 'Q3_K', 13: 'Q5_K', 15: 'Q8_K', 16: 'IQ2_XXS',
  17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S', 23: 'IQ4_XS', 24: 'I8',
  25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M', 34: 'TQ1_0', 35: 'TQ2_0', 39: 'MXFP4'
}

/** The dtype of a ggml type number; throws UnsupportedDTypeError for types we do not handle. */
export function ggmlTypeToDType (ggmlType: number): DType {
  const dtype = BY_GGML_TYPE.get(ggmlType)
  if (dtype === undefined) {
    const name = GGML_TYPE_NAMES[ggmlType]
    throw new UnsupportedDTypeError(
      `unsupported ggml type ${ggmlType}${name !== undefined ? ` (${name})` : ''}; supported: ` +
      DTYPES.map((d) => `${d}=${DTYPE_INFO[d].ggmlType}`).join(', '))
  }
  return dtype
}

/** The info record of a dtype; throws UnsupportedDTypeError on an unknown name (e.g. from untyped input). */
export function dtypeInfo (dtype: DType): Readonly<DTypeInfo> {
  const info = (DTYPE_INFO as Record<string, DTypeInfo | undefined>)[dtype]
  if (info === undefined) throw new UnsupportedDTypeError(`unsupported dtype '${String(dtype)}'`)
  return info
}

/** Bytes of one row of `cols` elements; throws QuantLayoutError when cols is not a multiple of the block size. */
export function rowBytes (dtype: DType, cols: number): number {
  const info = dtypeInfo(dtype)
  if (!Number.isInteger(cols) || cols < 0 || cols % info.blockSize !== 0) {
    throw new QuantLayoutError(`${dtype} rows need a multiple of ${info.blockSize} elements, got ${cols}`)
  }
  return (cols / info.blockSize) * info.blockBytes
}

/** Bytes of a whole tensor of torch-order `shape` (blocks run along the last dimension). A scalar shape [] is one element. */
export function tensorBytes (dtype: DType, shape: readonly number[]): number {
  if (shape.length === 0) return rowBytes(dtype, 1)
  let rows = 1
  for (let i = 0; i < shape.length - 1; i++) {
    if (!Number.isInteger(shape[i]) || shape[i] < 0) throw new QuantLayoutError(`bad shape [${shape.join(', ')}]`)
    rows *= shape[i]
  }
  return rows * rowBytes(dtype, shape[shape.length - 1])
}
