/**
 * Backend registry: environments register backends (the CPU reference is always there); for every op the model
 * asks for, the highest-priority backend whose `supportsOp` accepts it runs it, else the CPU reference does.
 */
import * as reference from './ops/reference.js'
import type { Backend, OpDesc, OpName, Ops } from './backend-types.js'

export const referenceBackend: Backend = {
  name: 'cpu-reference',
  supportsOp: () => true,
  ...reference
}

interface Registered { backend: Backend, priority: number }

export class BackendRegistry {
  private readonly entries: Registered[] = [{ backend: referenceBackend, priority: -Infinity }]

  /** adds a backend; higher priority wins among those that support an op */
  register (backend: Backend, priority = 0): void {
    this.entries.push({ backend, priority })
    this.entries.sort((a, b) => b.priority - a.priority)
  }

  list (): Backend[] {
    return this.entries.map(e => e.backend)
  }

  /** the backend that will run `op` for `desc` */
  pick (op: OpName, desc: OpDesc = {}): Backend {
    for (const { backend } of this.entries) {
      if (backend[op] !== undefined && backend.supportsOp(op, desc)) return backend
    }
    return referenceBackend
  }

  /**
   * An op set that dispatches each call. Only `only` backends are used when given (e.g. ['cpu-reference']).
   * Matmul is picked per weight dtype and shape; the others per size.
   */
  ops (only?: string[]): Ops {
    const pick = (op: OpName, desc: OpDesc): Backend => {
      if (only === undefined) return this.pick(op, desc)
      for (const { backend } of this.entries) {
        if (only.includes(backend.name) && backend[op] !== undefined && backend.supportsOp(op, desc)) return backend
      }
      return referenceBackend
    }
    return {
      matmul: (out, w, x, T, bias) => pick('matmul', { dtype: w.dtype, shape: w.shape }).matmul!(out, w, x, T, bias),
      rmsNorm: (out, x, weight, T, dim, eps) => pick('rmsNorm', { shape: [dim] }).rmsNorm!(out, x, weight, T, dim, eps),
      rope: (x, T, nHeads, headDim, startPos, invFreqs, style) =>
        pick('rope', { shape: [nHeads, headDim] }).rope!(x, T, nHeads, headDim, startPos, invFreqs, style),
      attention: (out, q, k, v, T, startPos, nHeads, nKvHeads, headDim) =>
        pick('attention', { shape: [nHeads, nKvHeads, headDim] }).attention!(out, q, k, v, T, startPos, nHeads, nKvHeads, headDim),
      swiglu: (out, gate, up, n) => pick('swiglu', { shape: [n] }).swiglu!(out, gate, up, n),
      add: (out, a, b, n) => pick('add', { shape: [n] }).add!(out, a, b, n),
      // the backend that will run a weight's matmuls owns its bytes
      prepareWeight: (w) => pick('matmul', { dtype: w.dtype, shape: w.shape }).prepareWeight?.(w) ?? w
    }
  }
}

/** The process-wide registry the model code uses by default. */
export const defaultRegistry = new BackendRegistry()
