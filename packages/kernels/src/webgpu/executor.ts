/**
 * The WebGPU block executor: every op of a block range as WGSL kernels, weights in their stored dtype in storage
 * buffers, KV caches in device buffers, one submit and one readback per forward step.
 */
import type { BlockExecutor, DeviceBlock, DeviceKvCache } from '../model/executor.js'
import type { BlockWeights } from '../model/llama.js'
import { rowBytes } from '../quant/index.js'
import type { ModelConfig, Tensor } from '../types.js'
import { requestWebGpuDevice, type WebGpuDevice } from './device.js'
import { GpuKernels, type GpuRegion, type GpuWeight, type QuantizedActivation, type StepEncoder } from './kernels.js'
import { ACTIVATION_KIND, ATTENTION_KEYS_PER_SPLIT, ATTENTION_MAX_HEAD_DIM, ATTENTION_SPLIT_MAX_TOKENS, GPU_MATMUL_DTYPES } from './shaders.js'

interface GpuBlock extends DeviceBlock {
  attnNorm: GPUBuffer
  wq: GpuWeight
  wk: GpuWeight
  wv: GpuWeight
  bq?: GPUBuffer
  bk?: GPUBuffer
  bv?: GPUBuffer
  wo: GpuWeight
  ffnNorm: GPUBuffer
  wGate: GpuWeight
  wUp: GpuWeight
  wDown: GpuWeight
}

interface GpuHead extends DeviceBlock {
  outputNorm: GPUBuffer
  output: GpuWeight
}

class GpuKvCache implements DeviceKvCache {
  constructor (readonly keys: GPUBuffer[], readonly values: GPUBuffer[], readonly maxLength: number, readonly byteLength: number) {}
  destroy (): void {
    for (const b of [...this.keys, ...this.values]) b.destroy()
  }
}

/** activation buffers of one forward step, sized for `capacity` tokens */
interface Scratch {
  capacity: number
  x: GPUBuffer // [T, dim] hidden states, updated in place
  xb: GPUBuffer // [T, dim] normed
  q: GPUBuffer // [T, nHeads * headDim]
  att: GPUBuffer // [T, nHeads * headDim]
  proj: GPUBuffer // [T, dim]
  gate: GPUBuffer // [T, ffnDim]
  up: GPUBuffer // [T, ffnDim]
  cs: GPUBuffer // [T, headDim / 2, 2] RoPE cos, sin
  xq8: GPUBuffer // [T, widest row] q8_0 activation quants (int8, 4 per u32)
  xd8: GPUBuffer // [T, widest row / 32] their scales
  xqK: GPUBuffer // [T, widest row] q8_K activation quants (int8, 4 per u32)
  xdK: GPUBuffer // [T, widest row / 256] their scales
}

/**
 * Quantizes the activation x [T, cols] once for each kind the given weights need (ggml's vec_dot_type) and returns
 * the activation each weight reads.
 */
export function activationFor (enc: StepEncoder, x: GpuRegion, T: number, cols: number, weights: GpuWeight[],
  buffers: { xq8: GPUBuffer, xd8: GPUBuffer, xqK: GPUBuffer, xdK: GPUBuffer }): (w: GpuWeight) => GpuRegion | QuantizedActivation {
  const kinds = new Set(weights.map(w => ACTIVATION_KIND[w.dtype]))
  const q8 = kinds.has('q8_0') ? enc.quantize('q8_0', x, { buffer: buffers.xq8 }, { buffer: buffers.xd8 }, T, cols) : undefined
  const qK = kinds.has('q8_K') ? enc.quantize('q8_K', x, { buffer: buffers.xqK }, { buffer: buffers.xdK }, T, cols) : undefined
  return (w) => {
    const kind = ACTIVATION_KIND[w.dtype]
    return kind === 'q8_0' ? q8! : kind === 'q8_K' ? qK! : x
  }
}

export interface WebGpuExecutor extends BlockExecutor {
  readonly kernels: GpuKernels
  readonly adapterName: string
  readonly isFallbackAdapter: boolean
  /** uploads one weight matrix in its stored bytes */
  uploadWeight: (w: Tensor) => GpuWeight
}

export class WebGpuBlockExecutor implements WebGpuExecutor {
  readonly name: string
  readonly adapterName: string
  readonly isFallbackAdapter: boolean
  readonly kernels: GpuKernels
  /** largest weight buffer: the device's largest storage binding unless set smaller (tests) */
  private readonly maxChunkBytes: number
  private readonly maxStepTokens: number
  private readonly keysPerSplit: number
  private partials: GPUBuffer | undefined
  private logitsBuffer: GPUBuffer | undefined
  private scratch: Scratch | undefined
  private scratchConfig: ModelConfig | undefined

  constructor (gpu: WebGpuDevice, kernels: GpuKernels, options: WebGpuExecutorOptions = {}) {
    this.maxChunkBytes = Math.min(options.maxWeightChunkBytes ?? Infinity, kernels.device.limits.maxStorageBufferBindingSize)
    this.maxStepTokens = options.maxTokensPerStep ?? Infinity
    this.keysPerSplit = options.attentionKeysPerSplit ?? ATTENTION_KEYS_PER_SPLIT
    this.adapterName = gpu.adapterName
    this.isFallbackAdapter = gpu.isFallbackAdapter
    this.name = `webgpu (${gpu.adapterName})`
    this.kernels = kernels
  }

  private get device (): GPUDevice { return this.kernels.device }

  uploadWeight (w: Tensor): GpuWeight {
    if (!GPU_MATMUL_DTYPES.includes(w.dtype)) throw new Error(`the WebGPU matmul does not read ${w.dtype} weights`)
    const [rows, cols] = w.shape
    const bytesPerRow = rowBytes(w.dtype, cols)
    // a matrix larger than one storage binding (128 MiB on lavapipe) goes up as row ranges, one dispatch each
    const rowsPerChunk = Math.min(GpuKernels.MAX_ROWS_PER_DISPATCH, Math.max(1, Math.floor(this.maxChunkBytes / bytesPerRow)))
    const chunks: GpuWeight['chunks'] = []
    for (let rowStart = 0; rowStart < rows; rowStart += rowsPerChunk) {
      const n = Math.min(rowsPerChunk, rows - rowStart)
      const bytes = w.data.subarray(rowStart * bytesPerRow, (rowStart + n) * bytesPerRow)
      chunks.push({ buffer: this.kernels.upload(bytes, w.name), rowStart, rows: n })
    }
    return { chunks, dtype: w.dtype, rows, cols, rowBytes: bytesPerRow }
  }

  uploadBlock (config: ModelConfig, w: BlockWeights): DeviceBlock {
    if (config.headDim > ATTENTION_MAX_HEAD_DIM) throw new Error(`head dim ${config.headDim} exceeds the WebGPU attention kernel's ${ATTENTION_MAX_HEAD_DIM}`)
    const up = (a: Float32Array | undefined): GPUBuffer | undefined => a === undefined ? undefined : this.kernels.upload(a)
    const block: Omit<GpuBlock, 'byteLength'> = {
      attnNorm: this.kernels.upload(w.attnNorm),
      wq: this.uploadWeight(w.wq),
      wk: this.uploadWeight(w.wk),
      wv: this.uploadWeight(w.wv),
      bq: up(w.bq),
      bk: up(w.bk),
      bv: up(w.bv),
      wo: this.uploadWeight(w.wo),
      ffnNorm: this.kernels.upload(w.ffnNorm),
      wGate: this.uploadWeight(w.wGate),
      wUp: this.uploadWeight(w.wUp),
      wDown: this.uploadWeight(w.wDown)
    }
    const byteLength = Object.values(block).reduce((n: number, b) =>
      n + (b === undefined ? 0 : ('chunks' in b ? b.chunks.reduce((m, c) => m + c.buffer.size, 0) : b.size)), 0)
    return { ...block, byteLength } satisfies GpuBlock
  }

  createCache (config: ModelConfig, nBlocks: number, maxLength: number): DeviceKvCache {
    const kvDim = config.nKvHeads * config.headDim
    const max = this.device.limits.maxStorageBufferBindingSize
    if (maxLength * kvDim * 4 > max) {
      throw new Error(`a KV cache of ${maxLength} positions x ${kvDim} values per block exceeds the device's largest storage binding (${max} bytes): at most ${Math.floor(max / (kvDim * 4))} positions`)
    }
    const keys: GPUBuffer[] = []
    const values: GPUBuffer[] = []
    for (let i = 0; i < nBlocks; i++) {
      keys.push(this.kernels.storage(maxLength * kvDim, `keys ${i}`))
      values.push(this.kernels.storage(maxLength * kvDim, `values ${i}`))
    }
    return new GpuKvCache(keys, values, maxLength, 2 * nBlocks * maxLength * kvDim * 4)
  }

  /**
   * Decode steps over a long cache spread each head's keys over workgroups of ATTENTION_KEYS_PER_SPLIT keys (one
   * workgroup per head would leave most of a GPU idle); the partial results need a buffer, grown on demand.
   */
  private attentionSplit (c: ModelConfig, T: number, startPos: number): { partials: GpuRegion, keysPerSplit: number } | undefined {
    const keysPerSplit = this.keysPerSplit
    const nSplits = Math.ceil((startPos + T) / keysPerSplit)
    if (T > ATTENTION_SPLIT_MAX_TOKENS || nSplits < 2) return undefined
    const floats = T * c.nHeads * nSplits * (c.headDim + 2)
    if (this.partials === undefined || this.partials.size < floats * 4) {
      let size = 1 << 16
      while (size < floats * 4) size *= 2
      if (size > this.device.limits.maxStorageBufferBindingSize) return undefined
      this.partials = this.kernels.storage(size / 4, 'attention partials')
    }
    return { partials: { buffer: this.partials }, keysPerSplit }
  }

  /** the most tokens one step holds: the widest activation buffer must fit one storage binding */
  maxTokensPerStep (c: ModelConfig): number {
    const widestRowBytes = 4 * Math.max(c.dim, c.nHeads * c.headDim, c.ffnDim)
    let capacity = 1
    while (capacity * 2 * widestRowBytes <= this.device.limits.maxStorageBufferBindingSize && capacity < 4096) capacity *= 2
    return Math.min(capacity, this.maxStepTokens)
  }

  private scratchFor (c: ModelConfig, T: number): Scratch {
    if (this.scratch !== undefined && this.scratch.capacity >= T && this.scratchConfig === c) return this.scratch
    let capacity = 1
    while (capacity < T) capacity *= 2
    const qDim = c.nHeads * c.headDim
    const widest = capacity * Math.max(c.dim, qDim, c.ffnDim)
    const k = this.kernels
    // buffers of a smaller scratch may still be in use by a submitted step: they are dropped, not destroyed
    this.scratch = {
      capacity,
      x: k.storage(capacity * c.dim, 'x'),
      xb: k.storage(capacity * c.dim, 'xb'),
      q: k.storage(capacity * qDim, 'q'),
      att: k.storage(capacity * qDim, 'att'),
      proj: k.storage(capacity * c.dim, 'proj'),
      gate: k.storage(capacity * c.ffnDim, 'gate'),
      up: k.storage(capacity * c.ffnDim, 'up'),
      cs: k.storage(capacity * c.headDim, 'rope cos/sin'),
      xq8: k.storage(widest / 4, 'q8_0 activation'),
      xd8: k.storage(Math.ceil(widest / 32), 'q8_0 activation scales'),
      xqK: k.storage(widest / 4, 'q8_K activation'),
      xdK: k.storage(Math.ceil(widest / 256), 'q8_K activation scales')
    }
    this.scratchConfig = c
    return this.scratch
  }

  async forward (c: ModelConfig, blocks: DeviceBlock[], deviceCache: DeviceKvCache, hidden: Float32Array, T: number,
    startPos: number, invFreqs: Float64Array, options: { signal?: AbortSignal } = {}): Promise<Float32Array> {
    options.signal?.throwIfAborted()
    const cache = deviceCache as GpuKvCache
    if (cache.keys.length !== blocks.length) throw new Error(`the cache holds ${cache.keys.length} blocks, ${blocks.length} given`)
    if (hidden.length !== T * c.dim) throw new Error(`hidden states hold ${hidden.length} values, expected ${T} x ${c.dim}`)
    if (startPos + T > cache.maxLength) throw new Error(`sequence of ${startPos + T} tokens exceeds the cache's ${cache.maxLength}`)
    // a long prompt goes through in slices that fit the activation buffers (all blocks per slice: causal attention
    // only needs the earlier slices' keys and values, which are in the cache by then)
    const maxT = this.maxTokensPerStep(c)
    if (T > maxT) {
      const out = new Float32Array(T * c.dim)
      for (let t0 = 0; t0 < T; t0 += maxT) {
        const n = Math.min(maxT, T - t0)
        out.set(await this.forward(c, blocks, deviceCache, hidden.subarray(t0 * c.dim, (t0 + n) * c.dim), n, startPos + t0, invFreqs, options), t0 * c.dim)
      }
      return out
    }
    const s = this.scratchFor(c, T)
    const queue = this.device.queue
    queue.writeBuffer(s.x, 0, hidden)
    queue.writeBuffer(s.cs, 0, ropeTable(invFreqs, startPos, T))
    const kvDim = c.nKvHeads * c.headDim
    const kvOffset = startPos * kvDim
    const split = this.attentionSplit(c, T, startPos)
    const enc = this.kernels.encoder()
    const x = { buffer: s.x }
    const xb = { buffer: s.xb }
    for (let i = 0; i < blocks.length; i++) {
      const w = blocks[i] as GpuBlock
      const keys = { buffer: cache.keys[i] }
      const values = { buffer: cache.values[i] }
      enc.rmsNorm(xb, x, w.attnNorm, T, c.dim, c.rmsNormEps)
      let a = activationFor(enc, xb, T, c.dim, [w.wq, w.wk, w.wv], s)
      enc.matmul({ buffer: s.q }, w.wq, a(w.wq), T, w.bq)
      enc.matmul(keys, w.wk, a(w.wk), T, w.bk, kvOffset)
      enc.matmul(values, w.wv, a(w.wv), T, w.bv, kvOffset)
      enc.rope({ buffer: s.q }, { buffer: s.cs }, T, c.nHeads, c.headDim, c.ropeStyle)
      enc.rope(keys, { buffer: s.cs }, T, c.nKvHeads, c.headDim, c.ropeStyle, kvOffset)
      enc.attention({ buffer: s.att }, { buffer: s.q }, keys, values, T, startPos, c.nHeads, c.nKvHeads, c.headDim, split)
      a = activationFor(enc, { buffer: s.att }, T, c.nHeads * c.headDim, [w.wo], s)
      enc.matmul({ buffer: s.proj }, w.wo, a(w.wo), T)
      enc.add(x, { buffer: s.proj }, T * c.dim)
      enc.rmsNorm(xb, x, w.ffnNorm, T, c.dim, c.rmsNormEps)
      a = activationFor(enc, xb, T, c.dim, [w.wGate, w.wUp], s)
      enc.matmul({ buffer: s.gate }, w.wGate, a(w.wGate), T)
      enc.matmul({ buffer: s.up }, w.wUp, a(w.wUp), T)
      enc.swiglu({ buffer: s.gate }, { buffer: s.up }, T * c.ffnDim)
      a = activationFor(enc, { buffer: s.gate }, T, c.ffnDim, [w.wDown], s)
      enc.matmul({ buffer: s.proj }, w.wDown, a(w.wDown), T)
      enc.add(x, { buffer: s.proj }, T * c.dim)
    }
    return (await enc.submit({ buffer: s.x, floats: T * c.dim }))!
  }

  uploadHead (config: ModelConfig, outputNorm: Float32Array, output: Tensor): DeviceBlock {
    const head = { outputNorm: this.kernels.upload(outputNorm, 'output_norm'), output: this.uploadWeight(output) }
    return { ...head, byteLength: head.outputNorm.size + head.output.chunks.reduce((n, c) => n + c.buffer.size, 0) } satisfies GpuHead
  }

  async logits (c: ModelConfig, deviceHead: DeviceBlock, hidden: Float32Array, T: number, options: { signal?: AbortSignal } = {}): Promise<Float32Array> {
    options.signal?.throwIfAborted()
    const head = deviceHead as GpuHead
    const vocab = head.output.rows
    if (hidden.length !== T * c.dim) throw new Error(`hidden states hold ${hidden.length} values, expected ${T} x ${c.dim}`)
    // the logits of a long prompt come back in slices that fit one storage binding
    const maxT = Math.max(1, Math.min(this.maxTokensPerStep(c), Math.floor(this.device.limits.maxStorageBufferBindingSize / (vocab * 4))))
    if (T > maxT) {
      const out = new Float32Array(T * vocab)
      for (let t0 = 0; t0 < T; t0 += maxT) {
        const n = Math.min(maxT, T - t0)
        out.set(await this.logits(c, deviceHead, hidden.subarray(t0 * c.dim, (t0 + n) * c.dim), n, options), t0 * vocab)
      }
      return out
    }
    const s = this.scratchFor(c, T)
    if (this.logitsBuffer === undefined || this.logitsBuffer.size < T * vocab * 4) {
      this.logitsBuffer = this.kernels.storage(Math.max(T, 4) * vocab, 'logits')
    }
    this.device.queue.writeBuffer(s.x, 0, hidden)
    const enc = this.kernels.encoder()
    enc.rmsNorm({ buffer: s.xb }, { buffer: s.x }, head.outputNorm, T, c.dim, c.rmsNormEps)
    const a = activationFor(enc, { buffer: s.xb }, T, c.dim, [head.output], s)
    enc.matmul({ buffer: this.logitsBuffer }, head.output, a(head.output), T)
    return (await enc.submit({ buffer: this.logitsBuffer, floats: T * vocab }))!
  }

  close (): void {
    this.device.destroy()
  }
}

/** [T, headDim/2] (cos, sin) of (startPos + t) * invFreqs[j], in f64 like the reference, stored as f32 */
export function ropeTable (invFreqs: Float64Array, startPos: number, T: number): Float32Array {
  const half = invFreqs.length
  const out = new Float32Array(T * half * 2)
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < half; j++) {
      const angle = (startPos + t) * invFreqs[j]
      out[(t * half + j) * 2] = Math.cos(angle)
      out[(t * half + j) * 2 + 1] = Math.sin(angle)
    }
  }
  return out
}

/**
 * A WebGPU block executor on the best adapter (Node: the npm `webgpu` package; lavapipe without a GPU).
 * Throws WebGpuUnavailableError when there is none.
 */
export async function createWebGpuExecutor (options: WebGpuExecutorOptions = {}): Promise<WebGpuBlockExecutor> {
  const gpu = await requestWebGpuDevice()
  return new WebGpuBlockExecutor(gpu, await GpuKernels.create(gpu.device, options.packedDot ?? gpu.packedDot), options)
}

export interface WebGpuExecutorOptions {
  /** use WGSL's dot4I8Packed (default: where the language feature is there) */
  packedDot?: boolean
  /** split weights into buffers of at most this many bytes (default: the device's largest storage binding) */
  maxWeightChunkBytes?: number
  /** run longer prompts in slices of at most this many tokens (default: what the activation buffers can hold) */
  maxTokensPerStep?: number
  /** keys per workgroup of split attention in decode steps (default ATTENTION_KEYS_PER_SPLIT; tests use small ones) */
  attentionKeysPerSplit?: number
}
