/**
 * The WebAssembly SIMD (+ threads) CPU backend. Weights are copied once, in their stored bytes, into one shared
 * WebAssembly.Memory (`prepareWeight`), which every worker thread of the pool maps; matmul rows are split across the
 * threads, the main thread taking a share. Activations are copied in and results out per op (they are small next to
 * the weights at decode). Ops follow the CPU reference in ops/reference.ts; the conformance suite checks them.
 */
import type { Backend, OpDesc, OpName } from '../backend-types.js'
import { F16_TO_F32, prepareActivation, rowBytes, tensorBytes } from '../quant/index.js'
import type { PreparedQ8KActivation } from '../quant/index.js'
import { COL_TILE, colTileSlice, type DType, type RopeStyle, type Tensor } from '../types.js'
import { ThreadPool } from './pool.js'
import './webassembly-types.js'

export interface WasmBackendOptions {
  /** participating threads (the main thread included); default: every core (os.availableParallelism()) */
  threads?: number
  /** use the relaxed-SIMD build when the engine validates it (default true; Node 20 needs --experimental-wasm-relaxed-simd) */
  relaxedSimd?: boolean
  /** a directory URL holding kernels.wasm (default: this package's dist/wasm/) */
  wasmUrl?: URL
}

export interface WasmBackend extends Backend {
  readonly threads: number
  /** whether the relaxed-SIMD build is running */
  readonly relaxedSimd: boolean
  /** bytes of the shared wasm memory in use (weights + scratch) */
  readonly memoryBytes: number
  /**
   * copies a weight's stored bytes into wasm memory once; the returned tensor views them there (f32 and f16 weights
   * wider than COL_TILE columns in the 'col-tiles' layout)
   */
  prepareWeight: (w: Tensor) => Tensor
  /** reads `bytes` of wasm memory with a streaming SIMD kernel on every thread; returns GB/s (memory bandwidth) */
  measureBandwidth: (bytes: number, repeats?: number) => number
  /** stops the worker threads; the backend keeps working on the calling thread */
  close: () => Promise<void>
}

const PAGE = 65536
const MAX_PAGES = 65536 // 4 GiB, wasm32's limit
const ALIGN = 64
const MATMUL_DTYPES = new Set<DType>(['f32', 'f16', 'q8_0', 'q4_0', 'q4_K', 'q6_K'])
const KERNELS = ['matmul_f32', 'matmul_f16', 'matmul_q8_0', 'matmul_q4_0', 'matmul_q4_K', 'matmul_q6_K', 'attention', 'stream_read_chunks']
/** the first allocation address: leaves the module's own (static) area alone */
const HEAP_BASE = 1 << 20

const align = (n: number): number => Math.ceil(n / ALIGN) * ALIGN

interface Exports {
  relaxed: () => number
  quantize_q8_0: (x: number, xq: number, xd: number, cols: number, T: number) => void
  widen_q8_0: (xq: number, xd: number, xw: number, xs: number, xb: number, cols: number, T: number, q4: number) => void
  widen_q8_K: (src: number, dst: number, sums: number, n: number) => void
  rms_norm: (out: number, x: number, w: number, T: number, dim: number, eps: number) => void
  rope: (x: number, T: number, nHeads: number, headDim: number, startPos: number, invFreqs: number, style: number, cs: number) => void
  swiglu: (out: number, gate: number, up: number, n: number) => void
  add: (out: number, a: number, b: number, n: number) => void
}

async function readWasm (url: URL): Promise<Uint8Array> {
  const { readFile } = await import('node:fs/promises')
  return await readFile(url)
}

/** Loads the kernels, starts `threads - 1` workers. Throws when WebAssembly SIMD or the binary is unavailable. */
export async function createWasmBackend (options: WasmBackendOptions = {}): Promise<WasmBackend> {
  const os = await import('node:os')
  const threads = Math.max(1, Math.floor(options.threads ?? os.availableParallelism()))
  // src/wasm/ (tests) and dist/wasm/ (built) both resolve ../../dist/wasm/ to the package's dist/wasm/
  const dir = options.wasmUrl ?? new URL('../../dist/wasm/', import.meta.url)
  let bytes: Uint8Array | undefined
  let relaxedSimd = false
  if (options.relaxedSimd !== false) {
    try {
      const relaxed = await readWasm(new URL('kernels-relaxed.wasm', dir))
      if (WebAssembly.validate(relaxed)) {
        bytes = relaxed
        relaxedSimd = true
      }
    } catch { /* no relaxed build: the plain one below */ }
  }
  bytes ??= await readWasm(new URL('kernels.wasm', dir))
  const module = await WebAssembly.compile(bytes)
  const memory = new WebAssembly.Memory({ initial: 17, maximum: MAX_PAGES, shared: true })
  const instance = await WebAssembly.instantiate(module, { env: { memory } })
  const exports = instance.exports as unknown as Exports
  const pool = await ThreadPool.start(threads, module, memory, instance.exports, KERNELS)
  return new WasmBackendImpl(memory, exports, pool, relaxedSimd)
}

class WasmBackendImpl implements WasmBackend {
  readonly name = 'wasm'
  readonly threads: number
  readonly relaxedSimd: boolean
  private readonly memory: WebAssembly.Memory
  private readonly k: Exports
  private readonly pool: ThreadPool
  private top = HEAP_BASE
  private readonly weights = new WeakMap<Uint8Array, number>()
  private scratchPtr = 0
  private scratchBytes = 0
  private f32: Float32Array
  private f64: Float64Array
  private i16: Int16Array
  private u8: Uint8Array
  /** f16 -> f32 table the q8_0/q4_0 kernels read block scales through (256 KiB) */
  private readonly f16Table: number

  constructor (memory: WebAssembly.Memory, k: Exports, pool: ThreadPool, relaxedSimd: boolean) {
    this.memory = memory
    this.k = k
    this.pool = pool
    this.threads = pool.threads
    this.relaxedSimd = relaxedSimd
    const buffer = memory.buffer
    this.f32 = new Float32Array(buffer)
    this.f64 = new Float64Array(buffer)
    this.i16 = new Int16Array(buffer)
    this.u8 = new Uint8Array(buffer)
    this.f16Table = this.alloc(F16_TO_F32.byteLength)
    this.f32.set(F16_TO_F32, this.f16Table >> 2)
  }

  get memoryBytes (): number {
    return this.top
  }

  supportsOp = (op: OpName, desc: OpDesc): boolean => {
    if (op === 'matmul') return desc.dtype !== undefined && MATMUL_DTYPES.has(desc.dtype)
    return true
  }

  // ---- memory ----

  private alloc (bytes: number): number {
    const ptr = this.top
    const end = align(ptr + bytes)
    const have = this.memory.buffer.byteLength
    if (end > have) {
      const pages = Math.ceil((end - have) / PAGE)
      if (have / PAGE + pages > MAX_PAGES) throw new RangeError(`wasm memory is limited to 4 GiB; ${end} bytes requested`)
      this.memory.grow(pages)
    }
    this.top = end
    this.refreshViews()
    return ptr
  }

  private refreshViews (): void {
    const buffer = this.memory.buffer
    if (this.u8.byteLength === buffer.byteLength) return
    this.f32 = new Float32Array(buffer)
    this.f64 = new Float64Array(buffer)
    this.i16 = new Int16Array(buffer)
    this.u8 = new Uint8Array(buffer)
  }

  /** a scratch area of at least `bytes` (reused across ops; grown geometrically, the old one is abandoned) */
  private scratch (bytes: number): number {
    if (bytes > this.scratchBytes) {
      const size = align(Math.max(bytes, this.scratchBytes * 2, 1 << 20))
      this.scratchPtr = this.alloc(size)
      this.scratchBytes = size
    }
    return this.scratchPtr
  }

  prepareWeight = (w: Tensor): Tensor => {
    if (this.weights.has(w.data)) return w
    const n = tensorBytes(w.dtype, w.shape)
    const ptr = this.alloc(n)
    const [rows, cols] = w.shape
    // f32 and f16 rows longer than a tile go in column tiles (see kernels.ts): a decode matvec then keeps its slice of
    // x in L1 while the weights stream past contiguously. A weight another wasm backend already tiled is copied as is.
    const tiled = (w.dtype === 'f32' || w.dtype === 'f16') && w.shape.length === 2 && cols > COL_TILE
    if (tiled && w.layout !== 'col-tiles') {
      const eb = rowBytes(w.dtype, 1)
      for (let c = 0; c < cols; c += COL_TILE) {
        for (let r = 0; r < rows; r++) {
          const { offset, length } = colTileSlice(rows, cols, r, c)
          this.u8.set(w.data.subarray((r * cols + c) * eb, (r * cols + c + length) * eb), ptr + offset * eb)
        }
      }
    } else {
      this.u8.set(w.data.subarray(0, n), ptr)
    }
    const data = new Uint8Array(this.memory.buffer, ptr, n)
    this.weights.set(data, ptr)
    return tiled ? { ...w, data, layout: 'col-tiles' } : { ...w, data }
  }

  private weightPtr (w: Tensor): number {
    const ptr = this.weights.get(w.data)
    if (ptr !== undefined) return ptr
    // not prepared at load: upload now, once per data array
    const prepared = this.prepareWeight(w)
    const p = this.weights.get(prepared.data) as number
    this.weights.set(w.data, p)
    return p
  }

  // ---- ops ----

  matmul = (out: Float32Array, w: Tensor, x: Float32Array, T: number, bias?: Float32Array): void => {
    const [rows, cols] = w.shape
    const wPtr = this.weightPtr(w)
    const xBytes = align(T * cols * 4)
    const outBytes = align(T * rows * 4)
    // the quantized activation: int8 quants, the same widened to int16, f32 scales, the scales as widen_q8_0 lays them
    // out, and per-block sums (q4_0: an i32x4 bias per 32; q4_K: an int16 sum per 32)
    const nb = cols / 32
    const qBytes = w.dtype === 'f32' || w.dtype === 'f16' ? 0 : align(T * cols) + align(T * cols * 2) + 2 * align(T * nb * 4) + align(T * nb * 16)
    const base = this.scratch(xBytes + outBytes + qBytes)
    const xPtr = base
    const outPtr = base + xBytes
    const q8Ptr = outPtr + outBytes
    const qPtr = q8Ptr + align(T * cols)
    const dPtr = qPtr + align(T * cols * 2)
    const xsPtr = dPtr + align(T * nb * 4)
    const sPtr = xsPtr + align(T * nb * 4)
    const unit = 4 // rows per split unit (keeps the 2-row kernels paired)
    switch (w.dtype) {
      case 'f32':
      case 'f16':
        this.f32.set(x.subarray(0, T * cols), xPtr >> 2)
        this.pool.run(`matmul_${w.dtype}`, [wPtr, xPtr, outPtr, rows, cols, T], rows, unit, 16)
        break
      case 'q8_0':
      case 'q4_0':
        this.f32.set(x.subarray(0, T * cols), xPtr >> 2)
        this.k.quantize_q8_0(xPtr, q8Ptr, dPtr, cols, T)
        this.k.widen_q8_0(q8Ptr, dPtr, qPtr, xsPtr, sPtr, cols, T, w.dtype === 'q4_0' ? 1 : 0)
        this.pool.run(`matmul_${w.dtype}`, [wPtr, qPtr, xsPtr, sPtr, outPtr, rows, cols, T, this.f16Table], rows, unit, 16)
        break
      case 'q4_K': {
        const nbK = cols / 256
        for (let t = 0; t < T; t++) {
          const a = prepareActivation(w.dtype, x, t * cols, cols) as PreparedQ8KActivation
          this.u8.set(new Uint8Array(a.qs.buffer, a.qs.byteOffset, cols), q8Ptr + t * cols)
          this.f32.set(a.d, (dPtr >> 2) + t * nbK)
        }
        this.k.widen_q8_K(q8Ptr, qPtr, sPtr, T * cols)
        this.pool.run('matmul_q4_K', [wPtr, qPtr, dPtr, sPtr, outPtr, rows, cols, T, this.f16Table], rows, unit, 16)
        break
      }
      case 'q6_K': {
        const nbK = cols / 256
        for (let t = 0; t < T; t++) {
          const a = prepareActivation(w.dtype, x, t * cols, cols) as PreparedQ8KActivation
          this.i16.set(a.qs, (qPtr >> 1) + t * cols)
          this.f32.set(a.d, (dPtr >> 2) + t * nbK)
        }
        this.pool.run('matmul_q6_K', [wPtr, qPtr, dPtr, outPtr, rows, cols, T], rows, unit, 16)
        break
      }
      default:
        throw new Error(`wasm matmul does not support ${w.dtype}`)
    }
    out.set(this.f32.subarray(outPtr >> 2, (outPtr >> 2) + T * rows))
    if (bias !== undefined) {
      for (let t = 0; t < T; t++) {
        for (let r = 0; r < rows; r++) out[t * rows + r] += bias[r]
      }
    }
  }

  rmsNorm = (out: Float32Array, x: Float32Array, weight: Float32Array, T: number, dim: number, eps: number): void => {
    const n = T * dim
    const base = this.scratch(align(n * 4) * 2 + align(dim * 4))
    const xPtr = base
    const oPtr = base + align(n * 4)
    const wPtr = oPtr + align(n * 4)
    this.f32.set(x.subarray(0, n), xPtr >> 2)
    this.f32.set(weight.subarray(0, dim), wPtr >> 2)
    this.k.rms_norm(oPtr, xPtr, wPtr, T, dim, eps)
    out.set(this.f32.subarray(oPtr >> 2, (oPtr >> 2) + n))
  }

  rope = (x: Float32Array, T: number, nHeads: number, headDim: number, startPos: number, invFreqs: Float64Array,
    style: RopeStyle): void => {
    const n = T * nHeads * headDim
    const half = headDim / 2
    const base = this.scratch(align(n * 4) + align(half * 8) + align(headDim * 4))
    const xPtr = base
    const fPtr = base + align(n * 4)
    const csPtr = fPtr + align(half * 8)
    this.f32.set(x.subarray(0, n), xPtr >> 2)
    this.f64.set(invFreqs.subarray(0, half), fPtr >> 3)
    this.k.rope(xPtr, T, nHeads, headDim, startPos, fPtr, style === 'adjacent' ? 0 : 1, csPtr)
    x.set(this.f32.subarray(xPtr >> 2, (xPtr >> 2) + n))
  }

  attention = (out: Float32Array, q: Float32Array, kCache: Float32Array, vCache: Float32Array, T: number,
    startPos: number, nHeads: number, nKvHeads: number, headDim: number): void => {
    const nKeys = startPos + T
    const qn = T * nHeads * headDim
    const kvn = nKeys * nKvHeads * headDim
    const base = this.scratch(align(qn * 4) * 2 + align(kvn * 4) * 2 + align(nHeads * nKeys * 4))
    const qPtr = base
    const oPtr = qPtr + align(qn * 4)
    const kPtr = oPtr + align(qn * 4)
    const vPtr = kPtr + align(kvn * 4)
    const sPtr = vPtr + align(kvn * 4)
    this.f32.set(q.subarray(0, qn), qPtr >> 2)
    this.f32.set(kCache.subarray(0, kvn), kPtr >> 2)
    this.f32.set(vCache.subarray(0, kvn), vPtr >> 2)
    // split by kv head groups so each thread reads its own keys and values
    this.pool.run('attention', [oPtr, qPtr, kPtr, vPtr, T, startPos, nHeads, nKvHeads, headDim, sPtr], nHeads,
      nHeads / nKvHeads, T * nKeys >= 64 ? 1 : nHeads)
    out.set(this.f32.subarray(oPtr >> 2, (oPtr >> 2) + qn))
  }

  swiglu = (out: Float32Array, gate: Float32Array, up: Float32Array, n: number): void => {
    this.elementwise('swiglu', out, gate, up, n)
  }

  add = (out: Float32Array, a: Float32Array, b: Float32Array, n: number): void => {
    this.elementwise('add', out, a, b, n)
  }

  /** out = kernel(a, b) over n values: a and b copied into scratch, the result computed in place of a */
  private elementwise (kernel: 'swiglu' | 'add', out: Float32Array, a: Float32Array, b: Float32Array, n: number): void {
    const aPtr = this.scratch(align(n * 4) * 2)
    const bPtr = aPtr + align(n * 4)
    this.f32.set(a.subarray(0, n), aPtr >> 2)
    this.f32.set(b.subarray(0, n), bPtr >> 2)
    this.k[kernel](aPtr, aPtr, bPtr, n)
    out.set(this.f32.subarray(aPtr >> 2, (aPtr >> 2) + n))
  }

  measureBandwidth = (bytes: number, repeats = 5): number => {
    const chunk = 1 << 16
    const n = Math.ceil(bytes / chunk)
    const ptr = this.alloc(n * chunk)
    this.u8.fill(1, ptr, ptr + n * chunk) // touch every page
    let best = Infinity
    for (let r = 0; r < repeats; r++) {
      const t0 = performance.now()
      // each participant streams its own chunks: stream_read(p, bytes) over chunk indices [r0, r1)
      this.pool.run('stream_read_chunks', [ptr, chunk], n, 1, 1)
      best = Math.min(best, performance.now() - t0)
    }
    return (n * chunk) / (best / 1000) / 1e9
  }

  close = async (): Promise<void> => {
    await this.pool.close()
  }
}
