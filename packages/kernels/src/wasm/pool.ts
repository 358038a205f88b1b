/**
 * A fixed pool of worker threads over one shared WebAssembly.Memory. Workers are started once, each instantiates the
 * same kernel module on the shared memory, and parks on Atomics.wait (after a short spin) until the main thread
 * publishes a job: a kernel export, its integer arguments and a range [0, n) to split. Every participant (the main
 * thread is participant 0) calls the kernel on its slice of the range, appended as the last two arguments.
 */
import type { Worker as NodeWorker } from 'node:worker_threads'
import './webassembly-types.js'

// control words (Int32Array over a small SharedArrayBuffer)
const GEN = 0 // bumped once per job
const DONE = 1 // workers finished with the current job
const FN = 2 // index into the kernel names; -1 tells workers to exit
const NARGS = 3
const READY = 4 // workers that have instantiated the module
const SPLIT_N = 5
const SPLIT_UNIT = 6
const ARGS = 8
const MAX_ARGS = 16
const CTRL_WORDS = ARGS + MAX_ARGS

/** iterations a worker (or the waiting main thread) polls before it sleeps in Atomics.wait */
const DEFAULT_SPIN = 20_000

export type Kernel = (...args: number[]) => unknown

// The worker is plain JavaScript evaluated from a string so that it runs the same from src/ (vitest) and dist/.
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads')
const { module, memory, ctrl: ctrlBuffer, index, participants, names, spin } = workerData
const instance = new WebAssembly.Instance(module, { env: { memory } })
const kernels = names.map((n) => instance.exports[n])
const ctrl = new Int32Array(ctrlBuffer)
let gen = Atomics.load(ctrl, ${GEN})
Atomics.add(ctrl, ${READY}, 1)
Atomics.notify(ctrl, ${READY})
for (;;) {
  let spins = 0
  while (Atomics.load(ctrl, ${GEN}) === gen) {
    if (++spins > spin) { Atomics.wait(ctrl, ${GEN}, gen); spins = 0 }
  }
  gen = Atomics.load(ctrl, ${GEN})
  const fn = ctrl[${FN}]
  if (fn < 0) break
  const n = ctrl[${SPLIT_N}]
  const unit = ctrl[${SPLIT_UNIT}]
  const units = Math.ceil(n / unit)
  const r0 = Math.min(n, Math.floor(units * index / participants) * unit)
  const r1 = Math.min(n, Math.floor(units * (index + 1) / participants) * unit)
  if (r1 > r0) {
    const args = Array.from(ctrl.subarray(${ARGS}, ${ARGS} + ctrl[${NARGS}]))
    args.push(r0, r1)
    kernels[fn](...args)
  }
  Atomics.add(ctrl, ${DONE}, 1)
  Atomics.notify(ctrl, ${DONE})
}
`

export class ThreadPool {
  /** participants: the workers plus the main thread */
  readonly threads: number
  private readonly ctrl: Int32Array
  private readonly workers: NodeWorker[]
  private readonly kernels: Kernel[]
  private readonly index: Map<string, number>
  private readonly spin: number
  private closed = false

  private constructor (threads: number, ctrl: Int32Array, workers: NodeWorker[], names: string[], kernels: Kernel[], spin: number) {
    this.threads = threads
    this.ctrl = ctrl
    this.workers = workers
    this.kernels = kernels
    this.index = new Map(names.map((n, i) => [n, i]))
    this.spin = spin
  }

  /**
   * Starts `threads - 1` workers on `module` + `memory`; `main` holds the main thread's instance exports.
   * Resolves once every worker has instantiated the module.
   */
  static async start (threads: number, module: WebAssembly.Module, memory: WebAssembly.Memory,
    main: Record<string, unknown>, names: string[], spin = DEFAULT_SPIN): Promise<ThreadPool> {
    const ctrlBuffer = new SharedArrayBuffer(CTRL_WORDS * 4)
    const ctrl = new Int32Array(ctrlBuffer)
    const workers: NodeWorker[] = []
    if (threads > 1) {
      const { Worker } = await import('node:worker_threads')
      for (let i = 1; i < threads; i++) {
        const worker = new Worker(WORKER_SOURCE, {
          eval: true,
          workerData: { module, memory, ctrl: ctrlBuffer, index: i, participants: threads, names, spin }
        })
        worker.unref()
        workers.push(worker)
      }
      const failed = new Promise<never>((_resolve, reject) => {
        for (const w of workers) w.once('error', reject)
      })
      const ready = (async () => {
        while (Atomics.load(ctrl, READY) < threads - 1) await new Promise(resolve => setTimeout(resolve, 1))
      })()
      try {
        await Promise.race([ready, failed])
      } catch (error) {
        await Promise.all(workers.map(async w => await w.terminate()))
        throw error
      }
    }
    const kernels = names.map(n => {
      const f = main[n]
      if (typeof f !== 'function') throw new Error(`wasm module has no export ${n}`)
      return f as Kernel
    })
    return new ThreadPool(threads, ctrl, workers, names, kernels, spin)
  }

  /**
   * Runs kernel `name`(...args, r0, r1) over [0, n) split in multiples of `unit` across all participants;
   * returns when every slice is done. Small ranges (fewer than `minPerThread` per participant) run on this thread.
   */
  run (name: string, args: number[], n: number, unit = 1, minPerThread = 1): void {
    const fn = this.index.get(name)
    if (fn === undefined) throw new Error(`unknown kernel ${name}`)
    const kernel = this.kernels[fn]
    const P = this.threads
    if (P === 1 || n < minPerThread * P || this.closed) {
      kernel(...args, 0, n)
      return
    }
    if (args.length > MAX_ARGS) throw new Error(`kernel ${name} has more than ${MAX_ARGS} arguments`)
    const ctrl = this.ctrl
    ctrl[FN] = fn
    ctrl[NARGS] = args.length
    for (let i = 0; i < args.length; i++) ctrl[ARGS + i] = args[i]
    ctrl[SPLIT_N] = n
    ctrl[SPLIT_UNIT] = unit
    Atomics.store(ctrl, DONE, 0)
    Atomics.add(ctrl, GEN, 1)
    Atomics.notify(ctrl, GEN)
    const units = Math.ceil(n / unit)
    const r1 = Math.min(n, Math.floor(units / P) * unit)
    if (r1 > 0) kernel(...args, 0, r1)
    let spins = 0
    for (;;) {
      const done = Atomics.load(ctrl, DONE)
      if (done === P - 1) break
      if (++spins > this.spin) {
        Atomics.wait(ctrl, DONE, done, 1)
        spins = 0
      }
    }
  }

  /** stops the workers */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.workers.length === 0) return
    Atomics.store(this.ctrl, FN, -1)
    Atomics.add(this.ctrl, GEN, 1)
    Atomics.notify(this.ctrl, GEN)
    await Promise.all(this.workers.map(async w => await w.terminate()))
  }
}
