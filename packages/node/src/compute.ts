/**
 * What a node computes: its loaded blocks and every session's KV cache, and the open / step / close requests on them,
 * one request at a time in arrival order.
 *
 * The blocks run on the networking thread. A step on the host ops (WebAssembly, CPU reference) runs in pieces of
 * about PIECE_MS (a chunk of its tokens through one block, BlockStack.forwardInPieces) and hands the event loop back
 * whenever PIECE_MS have passed, so a long prefill never keeps the node from answering pings, info requests and
 * other sessions' frames for much longer than a piece, while a decode step of a few blocks runs in one go (steps
 * queued back to back count as one run: many sessions' decode steps hand the event loop back too). A step on
 * a block executor (WebGPU) is asynchronous anyway. Compared with a separate compute thread this saves two thread
 * wake-ups per step on the route's critical path (the hand-off of the input and of the result) and a second V8 isolate.
 */
import { BlockStack, openModel, selectBackend, type BackendChoice, type KvCache } from '@swarm/kernels'

export interface ComputeInit {
  modelPath: string
  blocks: [number, number]
  threads?: number
  /** compute backend of the blocks (default: the kernels' default registry); 'webgpu' runs them on the GPU */
  backend?: BackendChoice
}

export type ComputeRequest =
  | { op: 'open', session: string, blocks: [number, number], maxLength: number }
  | { op: 'step', session: string, blocks: [number, number], hidden: Float32Array, T: number, startFrom?: number }
  | { op: 'close', session: string }

export interface ComputeReply {
  hidden?: Float32Array
  /** trace clock (process.hrtime.bigint()) when the step started and ended */
  startedAt?: bigint
  endedAt?: bigint
}

export class ComputeError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ComputeError'
  }
}

/** a piece of a step aims at this long, and a step hands the event loop back once this long has passed, ms */
const PIECE_MS = 50
/**
 * a piece holds at least 4 tokens (the matmul kernels' unit) while that takes no longer than this, ms: each piece
 * streams its block's weights again, and fewer tokens cost the kernels speed
 */
const MAX_PIECE_MS = 200

export class Compute {
  /** busy time computing since start, ms (for the load figure) */
  busyMs = 0
  private readonly caches = new Map<string, KvCache>()
  private queue: Promise<unknown> = Promise.resolve()
  /**
   * measured ms of one token through one block, which sizes the pieces of a step: in a piece of several tokens, and
   * in a piece of one (a matvec, which costs several times more per token: a decode step's would size a prefill's
   * pieces far too small, one token each on a slow CPU)
   */
  private tokenBlockMs: { several?: number, one?: number } = {}
  /** stop() was called: a step in pieces ends at its next piece, later requests fail */
  private stopped = false
  /** requests queued or running */
  private pending = 0
  /** when the event loop last had a turn during the current run of requests (see forwardYielding) */
  private lastYield = 0

  private constructor (private readonly stack: BlockStack) {}

  /** loads blocks [init.blocks) of the model; a failure is a ComputeError */
  static async start (init: ComputeInit): Promise<Compute> {
    try {
      const source = await openModel(init.modelPath)
      try {
        // default 'auto': the WebAssembly SIMD kernels where they support the op and dtype, the CPU reference
        // elsewhere (the same choice as `swarm generate --local`, so a swarm computes what a local run computes)
        const selected = await selectBackend(init.backend ?? 'auto', { threads: init.threads })
        const options = { ops: selected.ops, executor: selected.executor, threads: selected.threads }
        return new Compute(await BlockStack.load(source, { start: init.blocks[0], end: init.blocks[1] }, options))
      } finally {
        await source.close()
      }
    } catch (err) {
      throw new ComputeError((err as Error).message)
    }
  }

  /** runs `request` after the requests before it; resolves with its reply or rejects with a ComputeError */
  async call (request: ComputeRequest): Promise<ComputeReply> {
    // requests queued back to back follow each other as microtasks: the time since the event loop's last turn counts
    // across them, so many sessions' short decode steps hand it back as a long step does
    if (this.pending++ === 0) this.lastYield = performance.now()
    const run = this.queue.then(async () => await this.handle(request))
    this.queue = run.catch(() => {})
    try {
      return await run
    } catch (err) {
      throw err instanceof ComputeError ? err : new ComputeError((err as Error).message)
    } finally {
      this.pending--
    }
  }

  /** ends a step running in pieces at its next piece and fails the requests after it; the caches are freed */
  async stop (): Promise<void> {
    this.stopped = true
    await this.queue
    for (const cache of this.caches.values()) cache.dispose()
    this.caches.clear()
  }

  private async handle (request: ComputeRequest): Promise<ComputeReply> {
    if (this.stopped) throw new ComputeError('the node is stopping')
    switch (request.op) {
      case 'open': {
        this.caches.set(request.session, this.stack.createCache(request.maxLength, { start: request.blocks[0], end: request.blocks[1] }))
        return {}
      }
      case 'step': {
        const cache = this.caches.get(request.session)
        if (cache === undefined) throw new ComputeError(`no cache for session ${request.session}`)
        if (request.startFrom !== undefined) cache.truncate(request.startFrom)
        const startedAt = process.hrtime.bigint()
        const range = { start: request.blocks[0], end: request.blocks[1] }
        const hidden = this.stack.executor !== undefined
          ? await this.stack.forwardAsync(cache, request.hidden, request.T, range)
          : await this.forwardYielding(cache, request.hidden, request.T, range)
        const endedAt = process.hrtime.bigint()
        this.busyMs += Number(endedAt - startedAt) / 1e6
        return { hidden, startedAt, endedAt }
      }
      case 'close': {
        this.caches.get(request.session)?.dispose()
        this.caches.delete(request.session)
        return {}
      }
    }
  }

  /** a step on the host ops in pieces of about PIECE_MS, handing the event loop back every PIECE_MS */
  private async forwardYielding (cache: KvCache, hidden: Float32Array, T: number, range: { start: number, end: number }): Promise<Float32Array> {
    const chunkTokens = (): number => {
      const perToken = this.tokenBlockMs.several ?? this.tokenBlockMs.one
      if (perToken === undefined) return 4
      const n = Math.floor(PIECE_MS / perToken)
      // whole groups of 4 tokens (the matmul kernels take tokens 4 at a time)
      if (n >= 4) return n - n % 4
      return 4 * perToken <= MAX_PIECE_MS ? 4 : Math.max(1, n)
    }
    const pieces = this.stack.forwardInPieces(cache, hidden, T, range, chunkTokens)
    for (;;) {
      const started = performance.now()
      const piece = pieces.next()
      if (piece.done === true) return piece.value
      const now = performance.now()
      this.tokenBlockMs[piece.value > 1 ? 'several' : 'one'] = Math.max(1e-3, (now - started) / piece.value)
      if (now - this.lastYield >= PIECE_MS) {
        await new Promise(resolve => setImmediate(resolve))
        this.lastYield = performance.now()
        if (this.stopped) {
          // the cache goes back to where the step began
          pieces.return(new Float32Array(0))
          throw new ComputeError('the node is stopping')
        }
      }
    }
  }
}
