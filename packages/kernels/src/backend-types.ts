import type { DType, Tensor } from './types.js'

/** Ops a backend may implement. The model code asks the registry for each; the CPU reference has them all. */
export type OpName = 'matmul' | 'rmsNorm' | 'rope' | 'attention' | 'swiglu' | 'add'

/** What an op is asked to do, for capability checks. */
export interface OpDesc {
  /** weight dtype for matmul */
  dtype?: DType
  /** rows/cols of a matmul weight, T tokens, head dims ... whatever the backend needs to decide */
  shape?: number[]
}
