/** The networking thread's handle on the compute thread (compute-worker.ts). */
import { Worker } from 'node:worker_threads'
import type { BackendChoice } from '@swarm/kernels'

export interface ComputeInit {
  modelPath: string
  blocks: [number, number]
  threads?: number
  /** compute backend of the blocks (default: the kernels' default registry); 'webgpu' runs them on the GPU */
  backend?: BackendChoice
}

export type ComputeRequest =
  | { op: 'open', id: number, session: string, blocks: [number, number], maxLength: number }
  | { op: 'step', id: number, session: string, blocks: [number, number], hidden: Float32Array, T: number, startFrom?: number }
  | { op: 'close', id: number, session: string }

export interface ComputeReply {
  id: number
  ready?: boolean
  error?: string
  hidden?: Float32Array
  computeMs?: number
}

type RequestBody =
  | { op: 'open', session: string, blocks: [number, number], maxLength: number }
  | { op: 'step', session: string, blocks: [number, number], hidden: Float32Array, T: number, startFrom?: number }
  | { op: 'close', session: string }

export class ComputeError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ComputeError'
  }
}

/** Runs the blocks in a worker thread; every call resolves with the worker's reply or rejects with its error. */
export class Compute {
  private readonly worker: Worker
  private readonly pending = new Map<number, { resolve: (reply: ComputeReply) => void, reject: (err: Error) => void }>()
  private nextId = 1
  private exited: Error | undefined
  /** busy time of the compute thread since start, ms (for the load figure) */
  busyMs = 0

  private constructor (worker: Worker) {
    this.worker = worker
    worker.on('message', (reply: ComputeReply) => {
      const entry = this.pending.get(reply.id)
      if (entry === undefined) return
      this.pending.delete(reply.id)
      if (reply.computeMs !== undefined) this.busyMs += reply.computeMs
      if (reply.error !== undefined) entry.reject(new ComputeError(reply.error))
      else entry.resolve(reply)
    })
    const fail = (err: Error): void => {
      this.exited = err
      for (const entry of this.pending.values()) entry.reject(err)
      this.pending.clear()
    }
    worker.on('error', err => { fail(new ComputeError(`compute thread failed: ${err.message}`)) })
    worker.on('exit', code => { fail(new ComputeError(`compute thread exited with code ${code}`)) })
  }

  /** starts the worker and waits until it has loaded the blocks */
  static async start (init: ComputeInit): Promise<Compute> {
    const worker = new Worker(new URL('./compute-worker.js', import.meta.url), { workerData: init })
    await new Promise<void>((resolve, reject) => {
      const onMessage = (reply: ComputeReply): void => {
        worker.off('exit', onExit)
        if (reply.ready === true) resolve()
        else reject(new ComputeError(reply.error ?? 'compute thread failed to start'))
        worker.off('message', onMessage)
      }
      const onExit = (code: number): void => { reject(new ComputeError(`compute thread exited with code ${code} while loading`)) }
      worker.on('message', onMessage)
      worker.once('exit', onExit)
    })
    return new Compute(worker)
  }

  async call (body: RequestBody): Promise<ComputeReply> {
    if (this.exited !== undefined) throw this.exited
    const id = this.nextId++
    const transfer = body.op === 'step' ? [body.hidden.buffer as ArrayBuffer] : []
    return await new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.worker.postMessage({ ...body, id }, transfer)
    })
  }

  async stop (): Promise<void> {
    await this.worker.terminate()
  }
}
