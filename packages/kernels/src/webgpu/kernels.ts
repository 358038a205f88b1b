/**
 * The compiled WGSL pipelines and a step encoder: a forward step records every dispatch of every block, then writes
 * all their parameters in one uniform buffer and submits one command buffer, so a step costs one submit and one
 * readback whatever the number of blocks.
 */
import type { DType, RopeStyle } from '../types.js'
import {
  ACTIVATION_BLOCK, ACTIVATION_KIND, ADD_SHADER, ATTENTION_COMBINE_SHADER, ATTENTION_MAX_HEAD_DIM, attentionShader, ELEMENTWISE_WORKGROUP,
  GPU_MATMUL_DTYPES, MATMUL_TOKENS_DECODE, MATMUL_TOKENS_PREFILL, matmulShader, quantizeShader, RMS_NORM_SHADER, ROPE_SHADER, SWIGLU_SHADER
} from './shaders.js'

/**
 * a weight matrix on the device, in its stored bytes: one buffer, or several row ranges where the matrix exceeds the
 * device's largest storage binding
 */
export interface GpuWeight {
  chunks: Array<{ buffer: GPUBuffer, rowStart: number, rows: number }>
  dtype: DType
  rows: number
  cols: number
  rowBytes: number
}

/** a region of a device buffer holding f32 values */
export interface GpuRegion { buffer: GPUBuffer, offset?: number, size?: number }

/** an activation quantized to q8_0 / q8_K: one i32 per value and one f32 scale per block */
export interface QuantizedActivation { kind: 'q8_0' | 'q8_K', q: GpuRegion, d: GpuRegion }

const PARAM_SLOT_BYTES = 256 // minUniformBufferOffsetAlignment
const MAX_WORKGROUPS_PER_DIM = 65535
const MAX_CACHED_BIND_GROUPS = 16384

export const STORAGE_USAGE = 0x0080 | 0x0008 | 0x0004 // STORAGE | COPY_DST | COPY_SRC (GPUBufferUsage values)
const UNIFORM_USAGE = 0x0040 | 0x0008 // UNIFORM | COPY_DST
const READBACK_USAGE = 0x0001 | 0x0008 // MAP_READ | COPY_DST
const MAP_READ = 0x0001 // GPUMapMode.READ

/** the pipelines of every kernel, compiled once per device */
export class GpuKernels {
  readonly device: GPUDevice
  /** per weight dtype: [decode (one token per workgroup), prefill (a tile of tokens)] */
  readonly matmul: ReadonlyMap<DType, [GPUComputePipeline, GPUComputePipeline]>
  readonly rmsNorm: GPUComputePipeline
  readonly rope: GPUComputePipeline
  readonly attention: GPUComputePipeline
  readonly attentionSplit: GPUComputePipeline
  readonly attentionCombine: GPUComputePipeline
  readonly swiglu: GPUComputePipeline
  readonly add: GPUComputePipeline
  readonly quantize: ReadonlyMap<'q8_0' | 'q8_K', GPUComputePipeline>
  /** bound where a kernel takes an optional buffer that is absent (no bias) */
  readonly empty: GPUBuffer
  // Bind groups cost ~30 us each to create (Dawn), ~10 ms per decode step of a 22-block model: they are cached by
  // pipeline, buffers and parameter slot. Parameters live in one persistent uniform buffer, rewritten before each
  // submit (queue order keeps a step in flight on its own values).
  private readonly ids = new WeakMap<object, number>()
  private nextId = 1
  private readonly bindGroups = new Map<string, GPUBindGroup>()
  /**
   * the last bind group of each parameter slot and what it binds: a step's dispatches recur in the same order every
   * decode step, so most lookups compare a few references instead of building the string key (a third of a step's
   * encoding time before)
   */
  private readonly slots = new Map<number, { pipeline: GPUComputePipeline, regions: GpuRegion[], params: GPUBuffer, size: number, group: GPUBindGroup }>()
  private readonly layouts = new WeakMap<GPUComputePipeline, GPUBindGroupLayout>()
  private params: GPUBuffer | undefined

  private constructor (device: GPUDevice, pipelines: Map<string, GPUComputePipeline>) {
    this.device = device
    this.matmul = new Map(GPU_MATMUL_DTYPES.map(d => [d, [pipelines.get(`matmul-${d}-decode`)!, pipelines.get(`matmul-${d}-prefill`)!]]))
    this.rmsNorm = pipelines.get('rmsNorm')!
    this.rope = pipelines.get('rope')!
    this.attention = pipelines.get('attention')!
    this.attentionSplit = pipelines.get('attention-split')!
    this.attentionCombine = pipelines.get('attention-combine')!
    this.swiglu = pipelines.get('swiglu')!
    this.add = pipelines.get('add')!
    this.quantize = new Map([['q8_0', pipelines.get('quantize-q8_0')!], ['q8_K', pipelines.get('quantize-q8_K')!]])
    this.empty = device.createBuffer({ size: 16, usage: STORAGE_USAGE })
  }

  /** `packedDot`: WGSL has dot4I8Packed (else the quantized matmuls unpack bytes themselves) */
  static async create (device: GPUDevice, packedDot = true): Promise<GpuKernels> {
    const sources: Array<[string, string]> = [
      ...GPU_MATMUL_DTYPES.map((d): [string, string] => [`matmul-${d}-decode`, matmulShader(d, packedDot, MATMUL_TOKENS_DECODE)]),
      ...GPU_MATMUL_DTYPES.map((d): [string, string] => [`matmul-${d}-prefill`, matmulShader(d, packedDot, MATMUL_TOKENS_PREFILL)]),
      ['rmsNorm', RMS_NORM_SHADER], ['rope', ROPE_SHADER], ['attention', attentionShader(false)], ['attention-split', attentionShader(true)],
      ['attention-combine', ATTENTION_COMBINE_SHADER],
      ['swiglu', SWIGLU_SHADER], ['add', ADD_SHADER],
      ['quantize-q8_0', quantizeShader('q8_0')], ['quantize-q8_K', quantizeShader('q8_K')]
    ]
    const pipelines = new Map<string, GPUComputePipeline>()
    await Promise.all(sources.map(async ([name, code]) => {
      const module = device.createShaderModule({ code, label: name })
      try {
        pipelines.set(name, await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: name }))
      } catch (error) {
        const info = await module.getCompilationInfo()
        const messages = info.messages.map(m => `${m.lineNum}:${m.linePos} ${m.message}`).join('; ')
        throw new Error(`WGSL kernel ${name} failed to compile: ${(error as Error).message} ${messages}`, { cause: error })
      }
    }))
    return new GpuKernels(device, pipelines)
  }

  /** the most rows of a weight one dispatch covers (workgroups per dimension) */
  static readonly MAX_ROWS_PER_DISPATCH = MAX_WORKGROUPS_PER_DIM

  /** a storage buffer holding `data` (padded to 4 bytes) */
  upload (data: ArrayBufferView, label?: string): GPUBuffer {
    const size = Math.max(16, Math.ceil(data.byteLength / 4) * 4)
    const buffer = this.device.createBuffer({ size, usage: STORAGE_USAGE, mappedAtCreation: true, label })
    new Uint8Array(buffer.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
    buffer.unmap()
    return buffer
  }

  /** an uninitialized f32 storage buffer of n values */
  storage (n: number, label?: string): GPUBuffer {
    return this.device.createBuffer({ size: Math.max(16, n * 4), usage: STORAGE_USAGE, label })
  }

  encoder (): StepEncoder {
    return new StepEncoder(this)
  }

  private id (o: object): number {
    let id = this.ids.get(o)
    if (id === undefined) {
      id = this.nextId++
      this.ids.set(o, id)
    }
    return id
  }

  /** the persistent parameter buffer, at least `bytes` long (a larger one replaces it, and the cached bind groups) */
  paramBuffer (bytes: number): GPUBuffer {
    if (this.params === undefined || this.params.size < bytes) {
      let size = PARAM_SLOT_BYTES * 64
      while (size < bytes) size *= 2
      this.params = this.device.createBuffer({ size, usage: UNIFORM_USAGE, label: 'kernel parameters' })
      this.bindGroups.clear()
      this.slots.clear()
    }
    return this.params
  }

  /** the bind group of `regions` (bindings 0..n-1) and parameter slot `offset` of `params` (binding n) */
  bindGroup (pipeline: GPUComputePipeline, regions: GpuRegion[], params: GPUBuffer, offset: number, size: number): GPUBindGroup {
    const last = this.slots.get(offset)
    if (last !== undefined && last.pipeline === pipeline && last.params === params && last.size === size && sameRegions(last.regions, regions)) {
      return last.group
    }
    const group = this.keyedBindGroup(pipeline, regions, params, offset, size)
    this.slots.set(offset, { pipeline, regions: regions.map(r => ({ buffer: r.buffer, offset: r.offset, size: r.size })), params, size, group })
    return group
  }

  private keyedBindGroup (pipeline: GPUComputePipeline, regions: GpuRegion[], params: GPUBuffer, offset: number, size: number): GPUBindGroup {
    const key = `${this.id(pipeline)}|${regions.map(r => `${this.id(r.buffer)}:${r.offset ?? ''}:${r.size ?? ''}`).join('|')}|${this.id(params)}:${offset}:${size}`
    let group = this.bindGroups.get(key)
    if (group === undefined) {
      let layout = this.layouts.get(pipeline)
      if (layout === undefined) {
        layout = pipeline.getBindGroupLayout(0)
        this.layouts.set(pipeline, layout)
      }
      const entries: GPUBindGroupEntry[] = regions.map((region, binding) => ({
        binding,
        resource: region.offset === undefined && region.size === undefined
          ? { buffer: region.buffer }
          : { buffer: region.buffer, offset: region.offset ?? 0, size: region.size }
      }))
      entries.push({ binding: regions.length, resource: { buffer: params, offset, size } })
      group = this.device.createBindGroup({ layout, entries })
      // bounded: groups of closed sessions' caches are never asked for again
      if (this.bindGroups.size >= MAX_CACHED_BIND_GROUPS) {
        this.bindGroups.clear()
        this.slots.clear()
      }
      this.bindGroups.set(key, group)
    }
    return group
  }
}

function sameRegions (a: GpuRegion[], b: GpuRegion[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    if (a[i].buffer !== b[i].buffer || a[i].offset !== b[i].offset || a[i].size !== b[i].size) return false
  }
  return true
}

interface Dispatch {
  pipeline: GPUComputePipeline
  bindings: GpuRegion[]
  params: ArrayBuffer
  workgroups: [number, number] | [number, number, number]
}

/** little-endian param record: 'u' for u32, 'f' for f32, one letter per field */
function params (types: string, values: number[]): ArrayBuffer {
  const buffer = new ArrayBuffer(Math.max(16, Math.ceil(types.length / 4) * 16))
  const view = new DataView(buffer)
  for (let i = 0; i < types.length; i++) {
    if (types[i] === 'u') view.setUint32(i * 4, values[i], true)
    else view.setFloat32(i * 4, values[i], true)
  }
  return buffer
}

/** workgroups covering n threads of `size`, folded into two dimensions past the per-dimension limit */
function grid (n: number, size: number): [number, number] {
  const groups = Math.max(1, Math.ceil(n / size))
  const x = Math.min(groups, MAX_WORKGROUPS_PER_DIM)
  return [x, Math.ceil(groups / x)]
}

/** Records dispatches of one step; `submit` runs them all and optionally reads a region back. */
export class StepEncoder {
  private readonly dispatches: Dispatch[] = []
  constructor (private readonly kernels: GpuKernels) {}

  /**
   * y[outOffset + t * rows + r] = W[r, :] . x[t, :] (+ bias[r]); x is the f32 activation for float weights, its
   * q8_0 / q8_K quantization (`quantize`) for quantized ones
   */
  matmul (y: GpuRegion, w: GpuWeight, x: GpuRegion | QuantizedActivation, T: number, bias?: GPUBuffer, outOffset = 0): void {
    const kind = ACTIVATION_KIND[w.dtype]
    const quantized = 'kind' in x
    if (quantized ? x.kind !== kind : kind === 'q8_0' || kind === 'q8_K') {
      throw new Error(`${w.dtype} weights need a ${kind} activation, got ${quantized ? x.kind : 'f32'}`)
    }
    const [decode, prefill] = this.kernels.matmul.get(w.dtype)!
    const tokens = T === 1 ? MATMUL_TOKENS_DECODE : MATMUL_TOKENS_PREFILL
    for (const chunk of w.chunks) {
      const weight = { buffer: chunk.buffer }
      this.dispatches.push({
        pipeline: T === 1 ? decode : prefill,
        bindings: quantized
          ? [weight, x.q, y, { buffer: bias ?? this.kernels.empty }, x.d]
          : [weight, x, y, { buffer: bias ?? this.kernels.empty }],
        params: params('uuuuuuuu', [chunk.rows, w.cols, T, w.rowBytes, bias === undefined ? 0 : 1, outOffset, w.rows, chunk.rowStart]),
        workgroups: [chunk.rows, Math.ceil(T / tokens)]
      })
    }
  }

  /** quantizes x [T, cols] to `kind` into (q: T*cols int8 packed 4 per u32, d: one f32 per block) */
  quantize (kind: 'q8_0' | 'q8_K', x: GpuRegion, q: GpuRegion, d: GpuRegion, T: number, cols: number): QuantizedActivation {
    const block = ACTIVATION_BLOCK[kind]
    if (cols % block !== 0) throw new Error(`${kind} activations need a multiple of ${block} values per row, got ${cols}`)
    const nBlocks = T * cols / block
    this.dispatches.push({ pipeline: this.kernels.quantize.get(kind)!, bindings: [x, q, d], params: params('u', [nBlocks]), workgroups: grid(nBlocks, 64) })
    return { kind, q, d }
  }

  rmsNorm (y: GpuRegion, x: GpuRegion, weight: GPUBuffer, T: number, dim: number, eps: number): void {
    this.dispatches.push({
      pipeline: this.kernels.rmsNorm,
      bindings: [x, { buffer: weight }, y],
      params: params('uf', [dim, eps]),
      workgroups: [T, 1]
    })
  }

  /** rotates T rows of nHeads heads starting at f32 index `offset`, rows `rowStride` apart; cs: [T, headDim/2] (cos, sin) */
  rope (x: GpuRegion, cs: GpuRegion, T: number, nHeads: number, headDim: number, style: RopeStyle, offset = 0, rowStride = nHeads * headDim): void {
    this.dispatches.push({
      pipeline: this.kernels.rope,
      bindings: [x, cs],
      params: params('uuuuuu', [T, nHeads, headDim, style === 'adjacent' ? 1 : 0, offset, rowStride]),
      workgroups: grid(T * nHeads * headDim / 2, ELEMENTWISE_WORKGROUP)
    })
  }

  /**
   * Causal attention of T tokens at startPos over the cache. With `split`, the keys are spread over workgroups of
   * `keysPerSplit` keys each (flash-decoding) whose partial results go to `partials` ([T, nHeads, splits, headDim + 2])
   * and are combined after.
   */
  attention (y: GpuRegion, q: GpuRegion, keys: GpuRegion, values: GpuRegion, T: number, startPos: number, nHeads: number,
    nKvHeads: number, headDim: number, split?: { partials: GpuRegion, keysPerSplit: number }): void {
    if (headDim > ATTENTION_MAX_HEAD_DIM) throw new Error(`attention kernel holds head dims up to ${ATTENTION_MAX_HEAD_DIM}, got ${headDim}`)
    if (nHeads % nKvHeads !== 0) throw new Error(`${nHeads} heads do not split into ${nKvHeads} kv heads`)
    const scale = 1 / Math.sqrt(headDim)
    if (split === undefined) {
      this.dispatches.push({
        pipeline: this.kernels.attention,
        bindings: [q, keys, values, y],
        params: params('uuuuufuu', [T, startPos, nHeads, nKvHeads, headDim, scale, 0xffffffff, 1]),
        workgroups: [nHeads, T]
      })
      return
    }
    const nSplits = Math.ceil((startPos + T) / split.keysPerSplit)
    this.dispatches.push({
      pipeline: this.kernels.attentionSplit,
      bindings: [q, keys, values, split.partials],
      params: params('uuuuufuu', [T, startPos, nHeads, nKvHeads, headDim, scale, split.keysPerSplit, nSplits]),
      workgroups: [nHeads, T, nSplits]
    })
    this.dispatches.push({
      pipeline: this.kernels.attentionCombine,
      bindings: [split.partials, y],
      params: params('uuu', [nHeads, headDim, nSplits]),
      workgroups: [nHeads, T]
    })
  }

  /** gate = silu(gate) * up over n values */
  swiglu (gate: GpuRegion, up: GpuRegion, n: number): void {
    this.dispatches.push({ pipeline: this.kernels.swiglu, bindings: [gate, up], params: params('u', [n]), workgroups: grid(n, ELEMENTWISE_WORKGROUP) })
  }

  /** a += b over n values */
  add (a: GpuRegion, b: GpuRegion, n: number): void {
    this.dispatches.push({ pipeline: this.kernels.add, bindings: [a, b], params: params('u', [n]), workgroups: grid(n, ELEMENTWISE_WORKGROUP) })
  }

  /** submits every recorded dispatch in one compute pass; with `readback`, resolves to that region's f32 values */
  async submit (readback?: { buffer: GPUBuffer, offset?: number, floats: number }): Promise<Float32Array | undefined> {
    const { device } = this.kernels
    const n = this.dispatches.length
    // validation errors (a binding too large, a bad offset) would otherwise surface only as a console warning
    device.pushErrorScope('validation')
    let staging: GPUBuffer | undefined
    try {
      const uniforms = this.kernels.paramBuffer(Math.max(1, n) * PARAM_SLOT_BYTES)
      const packed = new Uint8Array(Math.max(1, n) * PARAM_SLOT_BYTES)
      this.dispatches.forEach((d, i) => packed.set(new Uint8Array(d.params), i * PARAM_SLOT_BYTES))
      device.queue.writeBuffer(uniforms, 0, packed)
      const encoder = device.createCommandEncoder()
      if (n > 0) {
        const pass = encoder.beginComputePass()
        this.dispatches.forEach((d, i) => {
          pass.setPipeline(d.pipeline)
          pass.setBindGroup(0, this.kernels.bindGroup(d.pipeline, d.bindings, uniforms, i * PARAM_SLOT_BYTES, d.params.byteLength))
          pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2] ?? 1)
        })
        pass.end()
      }
      if (readback !== undefined) {
        staging = device.createBuffer({ size: Math.max(16, readback.floats * 4), usage: READBACK_USAGE })
        encoder.copyBufferToBuffer(readback.buffer, readback.offset ?? 0, staging, 0, readback.floats * 4)
      }
      device.queue.submit([encoder.finish()])
    } catch (error) {
      staging?.destroy()
      void device.popErrorScope()
      throw error
    } finally {
      this.dispatches.length = 0
    }
    const validation = device.popErrorScope()
    try {
      const error = await validation
      if (error !== null) throw new Error(`WebGPU validation error: ${error.message}`)
      if (staging === undefined) {
        await device.queue.onSubmittedWorkDone()
        return undefined
      }
      await staging.mapAsync(MAP_READ, 0, readback!.floats * 4)
      return new Float32Array(staging.getMappedRange(0, readback!.floats * 4).slice(0))
    } finally {
      staging?.destroy()
    }
  }
}
