/**
 * The SDK's entry point: a libp2p host joined to the swarm, and the models reachable through it.
 *
 * ```ts
 * const swarm = await Swarm.connect({ bootstrap: ['/ip4/127.0.0.1/tcp/4001/p2p/12D3Koo...'] })
 * const model = await swarm.model('model.gguf')          // loads only embeddings, final norm and LM head
 * for await (const piece of model.generate('Once upon a time', { maxTokens: 32 })) process.stdout.write(piece)
 * await swarm.close()
 * ```
 */
import { defaultModelPath, loadTokenizer, ModelHead, openModel, selectBackend, weightsManifest, type BackendChoice } from '@swarm/kernels'
import {
  computeModelId, createSwarmHost, dialBootstrap, type InfoMessage, stopHost, type SwarmHost
} from '@swarm/protocol'
import { ClosedError } from './errors.js'
import { ModelView } from './model-view.js'
import { discoverRecords, exchangeInfo, rememberAddrs } from './discovery.js'
import { RemoteModel } from './remote-model.js'

export interface ConnectOptions {
  /** multiaddrs of peers in the swarm (a `swarm-node dht` or any node) */
  bootstrap: string[]
  /** libp2p private network key (parsed swarm key file) */
  swarmKey?: Uint8Array
  signal?: AbortSignal
  /** debug log (default: silent) */
  log?: (message: string) => void
}

export interface ModelOptions {
  signal?: AbortSignal
  /**
   * what runs the embeddings, final norm and LM head here (default 'auto', as `swarm generate --local` and
   * `swarm-node serve` default to, so a swarm computes what a local run computes); 'webgpu' means 'auto' here
   */
  backend?: BackendChoice
  /** threads of the head's backend (default 1) */
  threads?: number
  /** the model id the servers announce (default: computed from the file's config and weights) */
  modelId?: string
}

export class Swarm {
  private closed = false
  private readonly models = new Set<RemoteModel>()

  private constructor (readonly host: SwarmHost, private readonly log: (message: string) => void) {}

  static async connect (options: ConnectOptions): Promise<Swarm> {
    if (options.bootstrap.length === 0) throw new RangeError('Swarm.connect needs at least one bootstrap address')
    const host = await createSwarmHost({ swarmKey: options.swarmKey, dhtClient: true })
    try {
      await dialBootstrap(host, options.bootstrap, { signal: options.signal })
    } catch (err) {
      await stopHost(host)
      throw err
    }
    return new Swarm(host, options.log ?? (() => {}))
  }

  /**
   * Opens a model file (GGUF or HF directory; default: the embedded default model) for generation through the swarm;
   * only its embeddings, final norm and LM head are loaded.
   */
  async model (path: string = defaultModelPath(), options: ModelOptions = {}): Promise<RemoteModel> {
    if (this.closed) throw new ClosedError('the swarm connection is closed')
    const source = await openModel(path, { signal: options.signal })
    try {
      const modelId = options.modelId ?? computeModelId({ config: source.config, manifest: await weightsManifest(source, { signal: options.signal }) })
      const tokenizer = await loadTokenizer(source)
      const selected = await selectBackend(options.backend === 'webgpu' ? 'auto' : options.backend ?? 'auto', { threads: options.threads ?? 1 })
      try {
        const head = await ModelHead.load(source, { signal: options.signal, ops: selected.ops, threads: selected.threads })
        const view = new ModelView(this.host, modelId, source.config.nLayers, this.log)
        await view.refresh(options.signal)
        const model = new RemoteModel(this.host, view, head, tokenizer, source.generation, this.log, () => {
          this.models.delete(model)
          void selected.wasm?.close()
        })
        this.models.add(model)
        return model
      } catch (err) {
        await selected.wasm?.close()
        throw err
      }
    } finally {
      await source.close()
    }
  }

  /** What every peer this client can find says it serves (info protocol), for `swarm status`. */
  async peers (options: { signal?: AbortSignal, modelId?: string } = {}): Promise<Array<InfoMessage & { rttMs: number }>> {
    const signal = options.signal
    // the model's providers first (a DHT walk alone can miss a peer right after it joined)
    const records = options.modelId !== undefined ? await discoverRecords(this.host, options.modelId, { signal, timeoutMs: 5_000 }) : []
    for (const record of records) await rememberAddrs(this.host, record)
    // walk the DHT towards our own id and collect every peer it names: in a small swarm, all of them
    const peers = new Set<string>()
    const self = this.host.peerId.toString()
    try {
      const walk = this.host.services.dht.getClosestPeers(this.host.peerId.toMultihash().bytes, { signal: AbortSignal.any([AbortSignal.timeout(5_000), ...(signal !== undefined ? [signal] : [])]) })
      for await (const event of walk) {
        if (event.name === 'FINAL_PEER') peers.add(event.peer.id.toString())
        if (event.name === 'PEER_RESPONSE') for (const p of event.closer) peers.add(p.id.toString())
      }
    } catch {
      signal?.throwIfAborted()
    }
    for (const record of records) peers.add(record.peerId)
    for (const c of this.host.getConnections()) peers.add(c.remotePeer.toString())
    for (const p of await this.host.peerStore.all()) peers.add(p.id.toString())
    peers.delete(self)
    const answers = await Promise.all([...peers].map(async peerId => {
      try {
        // 10 s for the stream and the answer together (the worst case of the 5 s each they had apart)
        const { response, rttMs } = await exchangeInfo(this.host, peerId, { type: 'info-request' }, { signal: AbortSignal.timeout(10_000) })
        return response.type === 'info' ? [{ ...response, rttMs }] : []
      } catch {
        return []
      }
    }))
    return answers.flat()
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.all([...this.models].map(async m => { await m.close() }))
    await stopHost(this.host)
  }
}
