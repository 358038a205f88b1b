/**
 * The libp2p host every swarm process runs (node, DHT bootstrap peer, client): TCP, noise, yamux, identify, ping and
 * the private Kademlia DHT with the swarm's record validators and selectors. Node and client share it here so the
 * two sides can never disagree on the DHT protocol, the validators or the connection settings.
 */
import './polyfill.js'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht'
import { ping, type Ping } from '@libp2p/ping'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { DHT_PROTOCOL, DEFAULT_PROVIDER_TTL_MS } from './constants.js'
import { createRecordValidators, recordSelectors } from './record.js'

export type SwarmServices = {
  dht: KadDHT
  ping: Ping
  identify: unknown
}

export type SwarmHost = Libp2p<SwarmServices>

export interface SwarmHostOptions {
  /** multiaddrs to listen on (default: none, a dial-only client) */
  listen?: string[]
  /** the peer identity (default: a fresh Ed25519 key) */
  privateKey?: PrivateKey
  /** a libp2p private-network key file's bytes (`/key/swarm/psk/1.0.0/` format); peers without it cannot connect */
  swarmKey?: Uint8Array
  /** DHT client only: does not store records for others (clients) */
  dhtClient?: boolean
  /** how often the connection monitor pings each peer, ms (hung peers are detected within ~1.5 x this) */
  pingIntervalMs?: number
  /** validity of provider records this host publishes, ms */
  providerTtlMs?: number
}

/**
 * Ping interval of the connection monitor (libp2p's default): a hung peer's connections are aborted within about
 * 15 s. A client finds a hung server it waits on much sooner, by pinging that server only (client liveness.ts); a
 * 1 s monitor on every connection of every process cost a 3-node swarm on one machine about 20 ping streams a
 * second, each waking two processes while a node computed.
 */
export const DEFAULT_PING_INTERVAL_MS = 10_000

/** Bounds of the DHT's adaptive per-request timeout (kad-dht's networkDialTimeout), ms. */
export const DHT_REQUEST_MIN_TIMEOUT_MS = 2_000
export const DHT_REQUEST_MAX_TIMEOUT_MS = 10_000

/** Creates and starts a swarm host. */
export async function createSwarmHost (options: SwarmHostOptions = {}): Promise<SwarmHost> {
  const pingIntervalMs = options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS
  const providerTtlMs = options.providerTtlMs ?? DEFAULT_PROVIDER_TTL_MS
  return await createLibp2p({
    privateKey: options.privateKey,
    addresses: { listen: options.listen ?? [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionProtector: options.swarmKey === undefined ? undefined : preSharedKey({ psk: options.swarmKey }),
    connectionManager: {
      // many clients and nodes on one host (tests, a LAN behind NAT) must not be throttled as a dial flood
      inboundConnectionThreshold: 1000,
      maxConnections: 1000
    },
    connectionMonitor: {
      pingInterval: pingIntervalMs,
      pingTimeout: { minTimeout: pingIntervalMs, maxTimeout: 2 * pingIntervalMs }
    },
    services: {
      identify: identify(),
      // the default of one outbound ping stream collides with the connection monitor's pings
      ping: ping({ maxOutboundStreams: 4, maxInboundStreams: 8 }),
      dht: kadDHT({
        protocol: DHT_PROTOCOL,
        clientMode: options.dhtClient ?? false,
        // loopback and LAN addresses are real swarm addresses here (tests, home clusters)
        peerInfoMapper: passthroughMapper,
        // refuses forged, expired, mismatched and replayed (older seq) records
        validators: createRecordValidators(),
        selectors: recordSelectors,
        initialQuerySelfInterval: 0,
        // a DHT query waits for every peer it asks; a hung one (SIGSTOPped, a laptop asleep with its TCP still open)
        // holds it for the request timeout, libp2p's default at least 5 s and up to 60 s after failures. Requests
        // answered within the moving average x 1.2 still get that long; below 2 s is cut.
        networkDialTimeout: { minTimeout: DHT_REQUEST_MIN_TIMEOUT_MS, maxTimeout: DHT_REQUEST_MAX_TIMEOUT_MS },
        allowQueryWithZeroPeers: true,
        reprovide: { validity: providerTtlMs, interval: Math.max(1000, Math.floor(providerTtlMs / 3)), threshold: Math.floor(providerTtlMs / 2) }
      })
    }
  }) as SwarmHost
}

/**
 * Stops a host, keeping the process alive until it has stopped. libp2p bounds its waits while stopping (a connection's
 * close event, the close handshake) with AbortSignal.timeout, whose timer does not hold Node's event loop: once the
 * sockets are gone, a process with nothing else to do would otherwise end mid-stop with exit code 13 (unsettled
 * top-level await) instead of finishing its shutdown.
 */
export async function stopHost (host: SwarmHost): Promise<void> {
  const keepAlive = setInterval(() => {}, 60_000)
  try {
    await host.stop()
  } finally {
    clearInterval(keepAlive)
  }
}

/** Dials each bootstrap multiaddr; returns how many answered. Fails only when none did. */
export async function dialBootstrap (host: SwarmHost, addrs: readonly string[], options: { signal?: AbortSignal } = {}): Promise<number> {
  if (addrs.length === 0) return 0
  const errors: string[] = []
  let connected = 0
  await Promise.all(addrs.map(async addr => {
    try {
      await host.dial(multiaddr(addr), { signal: options.signal ?? AbortSignal.timeout(10_000) })
      connected++
    } catch (err) {
      errors.push(`${addr}: ${(err as Error).message}`)
    }
  }))
  if (connected === 0) throw new BootstrapError(`could not reach any bootstrap peer (${errors.join('; ')})`)
  await untilDhtPeer(host, options.signal)
  return connected
}

/**
 * Waits (at most a few seconds) until identify has told us that a connected peer speaks the swarm DHT, so the first
 * DHT query has somebody to ask instead of ending empty.
 */
async function untilDhtPeer (host: SwarmHost, signal?: AbortSignal): Promise<void> {
  // kad-dht exposes its routing table at run time, not in its types; without it, fall back to identify's answer
  const table = (host.services.dht as unknown as { routingTable?: { size: number } }).routingTable
  const deadline = Date.now() + 5_000
  while (Date.now() < deadline) {
    signal?.throwIfAborted()
    if (table !== undefined) {
      if (table.size > 0) return
    } else {
      for (const connection of host.getConnections()) {
        const peer = await host.peerStore.get(connection.remotePeer).catch(() => undefined)
        if (peer?.protocols.includes(DHT_PROTOCOL) === true) return
      }
    }
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

export class BootstrapError extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'BootstrapError'
  }
}

/** Parses a swarm key file (`/key/swarm/psk/1.0.0/\n/base16/\n<64 hex>`), throwing a one-line error on bad input. */
export function parseSwarmKey (bytes: Uint8Array): Uint8Array {
  const text = new TextDecoder().decode(bytes).trim().split(/\r?\n/)
  if (text.length !== 3 || text[0] !== '/key/swarm/psk/1.0.0/' || text[1] !== '/base16/' || !/^[0-9a-fA-F]{64}$/.test(text[2])) {
    throw new Error('the swarm key is not a libp2p private network key (/key/swarm/psk/1.0.0/, /base16/, 64 hex digits)')
  }
  return new TextEncoder().encode(`${text.join('\n')}\n`)
}
