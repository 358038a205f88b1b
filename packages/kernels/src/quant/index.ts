/**
 * Weight and activation number formats, bit-exact with ggml (llama.cpp): block geometry of each dtype, f16/bf16
 * conversion, row (de)quantization, and the CPU reference dot product in llama.cpp's order of operations
 * (activation converted to the weight's vec_dot_type first).
 *
 * @example
 * ```ts
 * const bytes = quantize('q8_0', weights, [rows, cols])          // byte-identical to llama.cpp's quantizer
 * const x = prepareActivation('q8_0', hidden, 0, cols)            // activation -> q8_0 blocks
 * const y0 = dotRow('q8_0', bytes, 0 * rowBytes('q8_0', cols), x) // row 0 of W . x
 * ```
 */
export { UnsupportedDTypeError, QuantLayoutError } from './errors.js'
export {
  DTYPE_INFO, DTYPES, QK_K, QK8_0, Q8_K_BLOCK_BYTES,
  ggmlTypeToDType, dtypeInfo, rowBytes, tensorBytes
} from './dtypes.js'
export type { DTypeInfo } from './dtypes.js'
export { F16_TO_F32, F16_TO_F32_BITS, f16ToF32, f32ToF16, bf16ToF32, f32ToBf16, roundToF16, roundToBf16 } from './half.js'
export { dequantizeRow, dequantize, getScaleMinK4 } from './dequantize.js'
export { quantizeRow, quantize, quantizeRowQ8_0, quantizeRowQ8K } from './quantize.js'
export type { Q8_0Rounding } from './quantize.js'
export { VEC_DOT_TYPE, prepareActivation, dotRow, preparedActivationBytes } from './dot.js'
export type {
  VecDotType, PreparedActivation, PreparedFloatActivation, PreparedQ8_0Activation, PreparedQ8KActivation,
  PrepareActivationOptions
} from './dot.js'
