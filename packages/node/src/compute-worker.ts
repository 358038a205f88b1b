/**
 * The compute thread of a node: it holds the loaded blocks and every session's KV cache and runs the forward
 * passes, so the networking thread keeps answering pings and other sessions while a long prefill runs.
 * Messages: see ComputeRequest / ComputeReply in compute.ts.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { BlockStack, openModel, selectBackend, type KvCache, type LoadOptions } from '@swarm/kernels'
import type { ComputeInit, ComputeReply, ComputeRequest } from './compute.js'

const port = parentPort!
const init = workerData as ComputeInit
const caches = new Map<string, KvCache>()

function reply (message: ComputeReply, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer)
}

async function main (): Promise<void> {
  let stack: BlockStack
  try {
    const source = await openModel(init.modelPath)
    try {
      // default 'auto': the WebAssembly SIMD kernels where they support the op and dtype, the CPU reference elsewhere
      // (the same choice as `swarm generate --local`, so a swarm computes what a local run computes)
      const selected = await selectBackend(init.backend ?? 'auto', { threads: init.threads })
      const options: LoadOptions = { ops: selected.ops, executor: selected.executor, threads: selected.threads }
      stack = await BlockStack.load(source, { start: init.blocks[0], end: init.blocks[1] }, options)
    } finally {
      await source.close()
    }
  } catch (err) {
    reply({ id: -1, error: (err as Error).message })
    return
  }
  reply({ id: 0, ready: true })
  // requests run one after another: a block executor (WebGPU) forwards asynchronously, and a session's steps must not
  // interleave
  let queue = Promise.resolve()
  port.on('message', (request: ComputeRequest) => {
    queue = queue.then(async () => { await handle(request) })
  })

  async function handle (request: ComputeRequest): Promise<void> {
    try {
      switch (request.op) {
        case 'open': {
          caches.set(request.session, stack.createCache(request.maxLength, { start: request.blocks[0], end: request.blocks[1] }))
          reply({ id: request.id })
          break
        }
        case 'step': {
          const cache = caches.get(request.session)
          if (cache === undefined) throw new Error(`no cache for session ${request.session}`)
          if (request.startFrom !== undefined) cache.truncate(request.startFrom)
          const started = performance.now()
          const range = { start: request.blocks[0], end: request.blocks[1] }
          const out = stack.executor === undefined
            ? stack.forward(cache, request.hidden, request.T, range)
            : await stack.forwardAsync(cache, request.hidden, request.T, range)
          reply({ id: request.id, hidden: out, computeMs: performance.now() - started }, [out.buffer as ArrayBuffer])
          break
        }
        case 'close': {
          caches.get(request.session)?.dispose()
          caches.delete(request.session)
          reply({ id: request.id })
          break
        }
      }
    } catch (err) {
      reply({ id: request.id, error: (err as Error).message })
    }
  }
}

await main()
