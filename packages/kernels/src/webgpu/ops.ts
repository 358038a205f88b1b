/**
 * One WGSL kernel at a time on host arrays (upload, run, read back), with the CPU reference's argument order: for
 * the conformance tests and for checking a kernel before timing it. The model path uses the block executor instead.
 */
import type { RopeStyle, Tensor } from '../types.js'
import type { GpuKernels } from './kernels.js'
import { activationFor, ropeTable, type WebGpuBlockExecutor } from './executor.js'

export class WebGpuOps {
  private readonly kernels: GpuKernels
  constructor (private readonly executor: WebGpuBlockExecutor) {
    this.kernels = executor.kernels
  }

  private async run (record: (enc: ReturnType<GpuKernels['encoder']>) => void, out: GPUBuffer, floats: number): Promise<Float32Array> {
    const enc = this.kernels.encoder()
    record(enc)
    return (await enc.submit({ buffer: out, floats }))!
  }

  /** out[T, rows] = x[T, cols] . W^T (+ bias) */
  async matmul (w: Tensor, x: Float32Array, T: number, bias?: Float32Array): Promise<Float32Array> {
    const weight = this.executor.uploadWeight(w)
    const xb = this.kernels.upload(x)
    const bb = bias === undefined ? undefined : this.kernels.upload(bias)
    const out = this.kernels.storage(T * weight.rows)
    const n = T * weight.cols
    const buffers = { xq8: this.kernels.storage(n), xd8: this.kernels.storage(Math.ceil(n / 32)), xqK: this.kernels.storage(n), xdK: this.kernels.storage(Math.ceil(n / 256)) }
    try {
      return await this.run(enc => {
        const a = activationFor(enc, { buffer: xb }, T, weight.cols, [weight], buffers)
        enc.matmul({ buffer: out }, weight, a(weight), T, bb)
      }, out, T * weight.rows)
    } finally {
      for (const b of [...weight.chunks.map(c => c.buffer), xb, bb, out, ...Object.values(buffers)]) b?.destroy()
    }
  }

  async rmsNorm (x: Float32Array, weight: Float32Array, T: number, dim: number, eps: number): Promise<Float32Array> {
    const xb = this.kernels.upload(x)
    const wb = this.kernels.upload(weight)
    const out = this.kernels.storage(T * dim)
    try {
      return await this.run(enc => enc.rmsNorm({ buffer: out }, { buffer: xb }, wb, T, dim, eps), out, T * dim)
    } finally {
      for (const b of [xb, wb, out]) b.destroy()
    }
  }

  async rope (x: Float32Array, T: number, nHeads: number, headDim: number, startPos: number, invFreqs: Float64Array, style: RopeStyle): Promise<Float32Array> {
    const xb = this.kernels.upload(x)
    const cs = this.kernels.upload(ropeTable(invFreqs, startPos, T))
    try {
      return await this.run(enc => enc.rope({ buffer: xb }, { buffer: cs }, T, nHeads, headDim, style), xb, x.length)
    } finally {
      for (const b of [xb, cs]) b.destroy()
    }
  }

  /** with `keysPerSplit`, the split (flash-decoding) kernel pair */
  async attention (q: Float32Array, kCache: Float32Array, vCache: Float32Array, T: number, startPos: number,
    nHeads: number, nKvHeads: number, headDim: number, keysPerSplit?: number): Promise<Float32Array> {
    const qb = this.kernels.upload(q)
    const kb = this.kernels.upload(kCache)
    const vb = this.kernels.upload(vCache)
    const out = this.kernels.storage(T * nHeads * headDim)
    const partials = keysPerSplit === undefined ? undefined : this.kernels.storage(T * nHeads * Math.ceil((startPos + T) / keysPerSplit) * (headDim + 2))
    const split = partials === undefined ? undefined : { partials: { buffer: partials }, keysPerSplit: keysPerSplit! }
    try {
      return await this.run(enc => enc.attention({ buffer: out }, { buffer: qb }, { buffer: kb }, { buffer: vb }, T, startPos, nHeads, nKvHeads, headDim, split),
        out, T * nHeads * headDim)
    } finally {
      for (const b of [qb, kb, vb, out, partials]) b?.destroy()
    }
  }

  async swiglu (gate: Float32Array, up: Float32Array, n: number): Promise<Float32Array> {
    const gb = this.kernels.upload(gate)
    const ub = this.kernels.upload(up)
    try {
      return await this.run(enc => enc.swiglu({ buffer: gb }, { buffer: ub }, n), gb, n)
    } finally {
      for (const b of [gb, ub]) b.destroy()
    }
  }

  async add (a: Float32Array, b: Float32Array, n: number): Promise<Float32Array> {
    const ab = this.kernels.upload(a)
    const bb = this.kernels.upload(b)
    try {
      return await this.run(enc => enc.add({ buffer: ab }, { buffer: bb }, n), ab, n)
    } finally {
      for (const buf of [ab, bb]) buf.destroy()
    }
  }
}
