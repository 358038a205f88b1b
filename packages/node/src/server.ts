/**
 * `swarm-node serve` as a library: loads blocks [start, end) of a model (compute.ts), joins the swarm,
 * announces a signed record on the DHT (refreshed well before it expires), and serves inference sessions.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { openModel, useLocalLavapipe, weightsManifest, type BackendChoice, type ModelConfig } from '@swarm/kernels'
import {
  computeModelId, createSwarmHost, dialBootstrap, DEFAULT_RECORD_REFRESH_MS, DEFAULT_RECORD_TTL_MS, INFERENCE_PROTOCOL,
  INFO_PROTOCOL, modelCid, nextRecordSeq, PROTOCOL_VERSION, PUSH_PROTOCOL, recordKey, signRecord, type InfoMessage, type ServerState,
  stopHost, type SwarmHost, type SwarmRecord, type Throughput
} from '@swarm/protocol'
import { Compute } from './compute.js'
import {
  DEFAULT_CACHE_TOKENS, DEFAULT_DRAIN_TIMEOUT_MS, DEFAULT_MAX_SESSIONS, DEFAULT_OPEN_TIMEOUT_MS,
  DEFAULT_SESSION_IDLE_TIMEOUT_MS, MAX_INBOUND_INFERENCE_STREAMS, MAX_INBOUND_PUSH_STREAMS
} from './constants.js'
import { handleInferenceStream } from './inference-handler.js'
import { handleInfoStream } from './info-handler.js'
import { handlePushStream } from './push-handler.js'
import { Pusher } from './pusher.js'
import { SessionTable } from './session-table.js'

export interface ServerOptions {
  /** GGUF file or Hugging Face directory */
  modelPath: string
  /** blocks to serve, [start, end) */
  blocks: [number, number]
  /** multiaddrs to listen on */
  listen?: string[]
  /** multiaddrs of peers already in the swarm */
  bootstrap?: string[]
  privateKey?: PrivateKey
  /** libp2p private network key (parsed swarm key file) */
  swarmKey?: Uint8Array
  /** most concurrent sessions */
  maxSessions?: number
  /** KV cache budget, tokens over all served blocks */
  cacheTokens?: number
  /** compute threads for backends that use them */
  threads?: number
  /** compute backend of the blocks (default: the kernels' default registry); 'webgpu' runs them on the GPU */
  backend?: BackendChoice
  /** close a session after this long without a step, ms */
  sessionIdleTimeoutMs?: number
  /** record lifetime and refresh interval, ms */
  recordTtlMs?: number
  recordRefreshMs?: number
  /** peers allowed to open sessions (default: all) */
  allowPeers?: string[]
  log?: (message: string) => void
}

export interface SwarmServer {
  host: SwarmHost
  modelId: string
  config: ModelConfig
  blocks: [number, number]
  throughput: Throughput
  /** announces offline, lets open sessions finish (up to drainTimeoutMs), closes the rest, stops */
  stop: (options?: { drainTimeoutMs?: number }) => Promise<void>
}

/** Model id of a model file: computeModelId over its config and weights manifest (cached per file). */
export async function modelIdOf (modelPath: string, signal?: AbortSignal): Promise<{ modelId: string, config: ModelConfig }> {
  const source = await openModel(modelPath, { signal })
  try {
    const manifest = await weightsManifest(source, { signal })
    return { modelId: computeModelId({ config: source.config, manifest }), config: source.config }
  } finally {
    await source.close()
  }
}

export async function startServer (options: ServerOptions): Promise<SwarmServer> {
  const log = options.log ?? (() => {})
  const { modelId, config } = await modelIdOf(options.modelPath)
  const [start, end] = options.blocks
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > config.nLayers || start >= end) {
    throw new RangeError(`invalid block range ${start}:${end} for a model of ${config.nLayers} blocks`)
  }
  const nBlocks = end - start
  const maxSessions = options.maxSessions ?? DEFAULT_MAX_SESSIONS
  const cacheTokens = options.cacheTokens ?? DEFAULT_CACHE_TOKENS
  const table = new SessionTable(cacheTokens * nBlocks, maxSessions, nBlocks)

  if (options.backend === 'webgpu') useLocalLavapipe()
  const compute = await Compute.start({ modelPath: options.modelPath, blocks: [start, end], threads: options.threads, backend: options.backend })
  let host: SwarmHost | undefined
  try {
    const throughput = await measureThroughput(compute, config, [start, end])
    log(`loaded blocks [${start}, ${end}) of model ${modelId}: ${throughput.inference.toFixed(1)} tok/s per block (decode), ${throughput.forward.toFixed(1)} (prefill)`)

    const privateKey = options.privateKey ?? await generateKeyPair('Ed25519')
    host = await createSwarmHost({ listen: options.listen ?? ['/ip4/127.0.0.1/tcp/0'], privateKey, swarmKey: options.swarmKey })
    const peerId = host.peerId.toString()
    let state: ServerState = 'joining'
    const ttlMs = options.recordTtlMs ?? DEFAULT_RECORD_TTL_MS
    const refreshMs = options.recordRefreshMs ?? DEFAULT_RECORD_REFRESH_MS
    let seq: number | undefined
    const started = performance.now()

    const load = (): number => Math.min(1, Math.max(table.load, compute.busyMs / Math.max(1, performance.now() - started)))
    const info = (): InfoMessage => ({
      type: 'info', peerId, modelId, blocks: [start, end], state, throughput, load: load(),
      cacheTokensLeft: table.cacheTokensLeft, version: PROTOCOL_VERSION
    })
    const record = (): SwarmRecord => {
      seq = nextRecordSeq(seq)
      return {
        modelId, peerId, blocks: [start, end], state, throughput, cacheTokensLeft: table.cacheTokensLeft, load: load(),
        version: PROTOCOL_VERSION, addrs: host!.getMultiaddrs().map(a => a.toString()).slice(0, 32), seq, expiresAt: Date.now() + ttlMs
      }
    }
    const key = recordKey(modelId, peerId)
    // what record-request answers: the value announced last (signed before it goes to the DHT)
    let signed = await signRecord(record(), privateKey)
    const announce = async (signal?: AbortSignal): Promise<void> => {
      const value = await signRecord(record(), privateKey)
      signed = value
      for await (const event of host!.services.dht.put(key, value, { signal })) { void event }
    }
    let announcing: Promise<void> | undefined
    const announceSoon = (): void => {
      if (announcing !== undefined || state === 'offline') return
      announcing = announce(AbortSignal.timeout(10_000))
        .catch(err => { log(`announce failed: ${(err as Error).message}`) })
        .finally(() => { announcing = undefined })
    }
    const provide = async (): Promise<void> => {
      await host!.contentRouting.provide(modelCid(modelId), { signal: AbortSignal.timeout(10_000) })
    }

    const pusher = new Pusher(host, log)
    const idleTimeoutMs = options.sessionIdleTimeoutMs ?? DEFAULT_SESSION_IDLE_TIMEOUT_MS
    const inference = {
      modelId, blocks: [start, end] as [number, number], dim: config.dim, contextLength: config.contextLength, table, compute,
      pusher,
      idleTimeoutMs,
      openTimeoutMs: DEFAULT_OPEN_TIMEOUT_MS,
      allowPeers: options.allowPeers === undefined ? undefined : new Set(options.allowPeers),
      log,
      onChange: announceSoon
    }
    await host.handle(INFERENCE_PROTOCOL, (stream, connection) => {
      handleInferenceStream(inference, stream, connection).catch(err => { log(`inference stream failed: ${(err as Error).message}`) })
    }, { maxInboundStreams: MAX_INBOUND_INFERENCE_STREAMS, runOnLimitedConnection: false })
    await host.handle(PUSH_PROTOCOL, (stream, connection) => {
      handlePushStream({ table, dim: config.dim, idleTimeoutMs, log }, stream, connection).catch(() => {})
    }, { maxInboundStreams: MAX_INBOUND_PUSH_STREAMS, runOnLimitedConnection: false })
    await host.handle(INFO_PROTOCOL, stream => {
      handleInfoStream({ modelId, info, record: () => signed }, stream).catch(() => {})
    }, { maxInboundStreams: 64 })

    await dialBootstrap(host, options.bootstrap ?? [])
    state = 'online'
    // the first announcement must land before we say we are ready: clients that start right after see us. The
    // record and the provider record go out together (each waits for its own DHT query)
    await Promise.all([
      announce(AbortSignal.timeout(15_000)).catch(err => { log(`first announce failed: ${(err as Error).message}`) }),
      Promise.resolve().then(provide).catch(err => { log(`provide failed: ${(err as Error).message}`) })
    ])
    const refresh = setInterval(() => {
      announceSoon()
      Promise.resolve().then(provide).catch(err => { log(`provide failed: ${(err as Error).message}`) })
    }, refreshMs)
    refresh.unref()

    let stopping: Promise<void> | undefined
    const stop = async (stopOptions: { drainTimeoutMs?: number } = {}): Promise<void> => {
      stopping ??= (async () => {
        clearInterval(refresh)
        state = 'offline'
        await announcing
        await announce(AbortSignal.timeout(3_000)).catch(err => { log(`offline announce failed: ${(err as Error).message}`) })
        const deadline = Date.now() + (stopOptions.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS)
        while (table.size > 0 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
        for (const session of table.all()) session.close('node stopping')
        await pusher.close()
        await stopHost(host!)
        await compute.stop()
      })()
      await stopping
    }
    return { host, modelId, config, blocks: [start, end], throughput, stop }
  } catch (err) {
    if (host !== undefined) await stopHost(host).catch(() => {})
    await compute.stop()
    throw err
  }
}

/**
 * Advertised speed, tokens/s per block: decode (one token per step) and prefill (64 tokens per step), measured once
 * at start on a throwaway session.
 */
async function measureThroughput (compute: Compute, config: ModelConfig, blocks: [number, number]): Promise<Throughput> {
  const session = 'throughput-probe'
  const nBlocks = blocks[1] - blocks[0]
  const prefillT = Math.min(64, config.contextLength - 4)
  await compute.call({ op: 'open', session, blocks, maxLength: prefillT + 4 })
  try {
    const hidden = (T: number): Float32Array => Float32Array.from({ length: T * config.dim }, (_, i) => Math.sin(i) * 0.1)
    let t0 = performance.now()
    await compute.call({ op: 'step', session, blocks, hidden: hidden(prefillT), T: prefillT })
    const forward = prefillT / Math.max(1e-3, (performance.now() - t0) / 1000) * nBlocks
    t0 = performance.now()
    const steps = 3
    for (let i = 0; i < steps; i++) await compute.call({ op: 'step', session, blocks, hidden: hidden(1), T: 1 })
    const inference = steps / Math.max(1e-3, (performance.now() - t0) / 1000) * nBlocks
    return { inference, forward }
  } finally {
    await compute.call({ op: 'close', session })
  }
}
