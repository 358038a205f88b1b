import type { DType, RopeStyle, Tensor } from './types.js'

/** Ops a backend may implement. The model code asks the registry for each; the CPU reference has them all. */
export type OpName = 'matmul' | 'rmsNorm' | 'rope' | 'attention' | 'swiglu' | 'add'

/** What an op is asked to do, for capability checks. */
export interface OpDesc {
  /** weight dtype (matmul) */
  dtype?: DType
  /** op-specific sizes: matmul [rows, cols], attention [nHeads, nKvHeads, headDim], others [n] */
  shape?: number[]
}

/**
 * The op set of one compute backend. Arguments follow the CPU reference in ops/reference.ts, which defines the
 * semantics; a backend only has to implement the ops it claims in `supportsOp`.
 */
export interface Backend {
  readonly name: string
  supportsOp: (op: OpName, desc: OpDesc) => boolean
  matmul?: (out: Float32Array, w: Tensor, x: Float32Array, T: number, bias?: Float32Array) => void
  rmsNorm?: (out: Float32Array, x: Float32Array, weight: Float32Array, T: number, dim: number, eps: number) => void
  rope?: (x: Float32Array, T: number, nHeads: number, headDim: number, startPos: number, invFreqs: Float64Array, style: RopeStyle) => void
  attention?: (out: Float32Array, q: Float32Array, kCache: Float32Array, vCache: Float32Array, T: number,
    startPos: number, nHeads: number, nKvHeads: number, headDim: number) => void
  swiglu?: (out: Float32Array, gate: Float32Array, up: Float32Array, n: number) => void
  add?: (out: Float32Array, a: Float32Array, b: Float32Array, n: number) => void
  /**
   * Called once per matmul weight at model load: a backend that keeps weights in its own memory (wasm, GPU) copies
   * the stored bytes there and returns the tensor to use from then on (same dtype and shape).
   */
  prepareWeight?: (w: Tensor) => Tensor
}

/** The dispatched op set the model code calls: every op present, plus the optional weight upload hook. */
export type Ops = Required<Pick<Backend, 'matmul' | 'rmsNorm' | 'rope' | 'attention' | 'swiglu' | 'add'>> &
  Pick<Backend, 'prepareWeight'>
