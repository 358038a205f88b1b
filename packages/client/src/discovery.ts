/**
 * The client's view of the swarm for one model: provider records on the model CID name the peers, each peer's
 * signed record (checked again here: signature, key, expiry, model id) says what it serves and how fast.
 */
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import {
  encodeInfoRequest, INFO_PROTOCOL, isCompatibleVersion, modelCid, parseInfoResponse, recordKey, verifyRecordValue,
  type SwarmHost, type SwarmRecord
} from '@swarm/protocol'

export interface DiscoverOptions {
  signal?: AbortSignal
  /** how long to look for providers, ms */
  timeoutMs?: number
  log?: (message: string) => void
}

/** Records of the peers that announce `modelId` (online, unexpired, valid signature, compatible version). */
export async function discoverRecords (host: SwarmHost, modelId: string, options: DiscoverOptions = {}): Promise<SwarmRecord[]> {
  const signal = AbortSignal.any([AbortSignal.timeout(options.timeoutMs ?? 10_000), ...(options.signal !== undefined ? [options.signal] : [])])
  const peers = new Set<string>()
  try {
    for await (const provider of host.contentRouting.findProviders(modelCid(modelId), { signal })) {
      peers.add(provider.id.toString())
      for (const addr of provider.multiaddrs) await host.peerStore.merge(provider.id, { multiaddrs: [addr] }).catch(() => {})
    }
  } catch (err) {
    options.signal?.throwIfAborted()
    if (!signal.aborted) options.log?.(`provider lookup ended early: ${(err as Error).message}`)
  }
  const records = await Promise.all([...peers].map(async peerId => await fetchRecord(host, modelId, peerId, options)))
  return records.filter((r): r is SwarmRecord => r !== undefined)
}

/** one peer's verified record, or undefined when it has none, an invalid one, or is offline */
export async function fetchRecord (host: SwarmHost, modelId: string, peerId: string, options: DiscoverOptions = {}): Promise<SwarmRecord | undefined> {
  const key = recordKey(modelId, peerId)
  try {
    const value = await host.contentRouting.get(key, { signal: AbortSignal.any([AbortSignal.timeout(5_000), ...(options.signal !== undefined ? [options.signal] : [])]) })
    // the DHT already ran the validator, but a client trusts nobody's DHT: verify again
    const record = await verifyRecordValue(key, value)
    if (record.state !== 'online') return undefined
    if (!isCompatibleVersion(record.version)) {
      options.log?.(`ignoring ${peerId}: protocol version ${record.version}`)
      return undefined
    }
    return record
  } catch (err) {
    options.signal?.throwIfAborted()
    options.log?.(`no usable record for ${peerId}: ${(err as Error).message}`)
    return undefined
  }
}

/** makes the record's addresses dialable by peer id */
export async function rememberAddrs (host: SwarmHost, record: SwarmRecord): Promise<void> {
  const addrs = record.addrs.flatMap(a => { try { return [multiaddr(a)] } catch { return [] } })
  if (addrs.length > 0) await host.peerStore.merge(peerIdFromString(record.peerId), { multiaddrs: addrs }).catch(() => {})
}

/** round trip of one info-protocol ping, ms (dials first if needed; the dial is not counted) */
export async function measureRtt (host: SwarmHost, peerId: string, options: { signal?: AbortSignal } = {}): Promise<number> {
  const signal = AbortSignal.any([AbortSignal.timeout(5_000), ...(options.signal !== undefined ? [options.signal] : [])])
  const peer = peerIdFromString(peerId)
  await host.dial(peer, { signal })
  const stream = await host.dialProtocol(peer, INFO_PROTOCOL, { signal })
  const lp = lpStream(stream)
  const nonce = Math.floor(Math.random() * 2 ** 31)
  const started = performance.now()
  await lp.write(encodeInfoRequest({ type: 'ping', nonce }), { signal })
  const response = parseInfoResponse((await lp.read({ signal })).subarray())
  const rtt = performance.now() - started
  await stream.close({ signal }).catch(() => {})
  if (response.type !== 'pong' || response.nonce !== nonce) throw new Error(`bad ping answer from ${peerId}`)
  return rtt
}
