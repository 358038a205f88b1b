/**
 * The client's view of the swarm for one model: provider records on the model CID name the peers, each peer's
 * signed record (checked again here: signature, key, expiry, model id) says what it serves and how fast.
 */
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import {
  Deadline, encodeInfoRequest, errorFromWire, INFO_PROTOCOL, isCompatibleVersion, MalformedMessageError, MAX_RECORD_VALUE_BYTES,
  modelCid, parseInfoResponse, recordKey, verifyRecordValue, type InfoRequest, type InfoResponse, type SwarmHost, type SwarmRecord
} from '@swarm/protocol'

export interface DiscoverOptions {
  signal?: AbortSignal
  /** how long to look for providers at most, ms */
  timeoutMs?: number
  /** end the provider lookup once it has named no new peer for this long after naming one, ms */
  quietMs?: number
  /** peers not to ask for their record (e.g. banned after a failure: a hung one would hold the lookup for 5 s) */
  skip?: ReadonlySet<string>
  log?: (message: string) => void
}

/** default DiscoverOptions.quietMs */
export const DEFAULT_DISCOVERY_QUIET_MS = 2_000

/**
 * Records of the peers that announce `modelId` (online, unexpired, valid signature, compatible version).
 *
 * Each provider's record is fetched as soon as the lookup names it. The lookup ends when the DHT query does, after
 * `timeoutMs`, or `quietMs` after the last new provider: every peer close to the model's CID holds the whole provider
 * set, so the first answers name everyone, while the query itself runs on until each peer near the CID has answered,
 * which a hung peer (SIGSTOPped, a sleeping laptop) stretches to the DHT's request timeout (2-10 s, host.ts).
 */
export async function discoverRecords (host: SwarmHost, modelId: string, options: DiscoverOptions = {}): Promise<SwarmRecord[]> {
  // the quiet window starts counting at the first provider
  const quiet = new Deadline(options.quietMs ?? DEFAULT_DISCOVERY_QUIET_MS)
  quiet.pause()
  const signal = AbortSignal.any([quiet.signal, AbortSignal.timeout(options.timeoutMs ?? 10_000), ...(options.signal !== undefined ? [options.signal] : [])])
  const fetches = new Map<string, Promise<SwarmRecord | undefined>>()
  try {
    for await (const provider of host.contentRouting.findProviders(modelCid(modelId), { signal })) {
      const peerId = provider.id.toString()
      if (fetches.has(peerId) || options.skip?.has(peerId) === true) continue
      for (const addr of provider.multiaddrs) await host.peerStore.merge(provider.id, { multiaddrs: [addr] }).catch(() => {})
      fetches.set(peerId, fetchRecord(host, modelId, peerId, options))
      quiet.restart()
    }
  } catch (err) {
    options.signal?.throwIfAborted()
    if (!signal.aborted) options.log?.(`provider lookup ended early: ${(err as Error).message}`)
  } finally {
    quiet.clear()
  }
  const records = await Promise.all(fetches.values())
  return records.filter((r): r is SwarmRecord => r !== undefined)
}

/**
 * One peer's verified record, or undefined when it has none, an invalid one, is offline, or does not answer.
 *
 * The record comes from the peer itself (info protocol record-request): the same signed bytes it puts in the DHT,
 * verified the same way (signature by the peer's key, key, expiry, model id), and its newest. A DHT get would wait
 * for every peer near the key, so one hung peer anywhere in the swarm (a laptop put to sleep, a SIGSTOPped process)
 * stalls every lookup until it times out, and a view refreshed then lost every server. A peer of protocol 1.0,
 * which has no record-request, is read from the DHT as before.
 */
export async function fetchRecord (host: SwarmHost, modelId: string, peerId: string, options: DiscoverOptions = {}): Promise<SwarmRecord | undefined> {
  const key = recordKey(modelId, peerId)
  try {
    const signal = AbortSignal.any([AbortSignal.timeout(5_000), ...(options.signal !== undefined ? [options.signal] : [])])
    const value = await requestRecord(host, modelId, peerId, signal) ?? await host.contentRouting.get(key, { signal })
    // a client trusts nobody: verify what the peer (or the DHT, which ran the validator already) gave
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

/**
 * The peer's signed record value of `modelId`, asked of the peer; undefined when the peer predates record-request
 * (it answers malformed-message). Other error answers and failures to reach it throw.
 */
async function requestRecord (host: SwarmHost, modelId: string, peerId: string, signal: AbortSignal): Promise<Uint8Array | undefined> {
  const { response } = await exchangeInfo(host, peerId, { type: 'record-request', modelId }, { signal, maxDataLength: MAX_RECORD_VALUE_BYTES + 1024 })
  if (response.type === 'record') return response.value
  if (response.type === 'error' && response.code === MalformedMessageError.code) return undefined
  throw response.type === 'error' ? errorFromWire(response) : new MalformedMessageError(`${peerId} answered a record-request with ${response.type}`)
}

/**
 * One info-protocol exchange with a peer on a stream of its own: the request, its response, and the round trip from
 * the request's write to the response's arrival (the dial is not counted). The stream is closed after the response
 * and aborted on any failure.
 */
export async function exchangeInfo (host: SwarmHost, peerId: string, request: InfoRequest, options: { signal: AbortSignal, maxDataLength?: number }): Promise<{ response: InfoResponse, rttMs: number }> {
  const { signal } = options
  const stream = await host.dialProtocol(peerIdFromString(peerId), INFO_PROTOCOL, { signal })
  try {
    const lp = lpStream(stream, options.maxDataLength !== undefined ? { maxDataLength: options.maxDataLength } : {})
    const started = performance.now()
    await lp.write(encodeInfoRequest(request), { signal })
    const response = parseInfoResponse((await lp.read({ signal })).subarray())
    const rttMs = performance.now() - started
    await stream.close({ signal }).catch(() => {})
    return { response, rttMs }
  } catch (err) {
    stream.abort(err as Error)
    throw err
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
  await host.dial(peerIdFromString(peerId), { signal })
  const nonce = Math.floor(Math.random() * 2 ** 31)
  const { response, rttMs } = await exchangeInfo(host, peerId, { type: 'ping', nonce }, { signal })
  if (response.type !== 'pong' || response.nonce !== nonce) throw new Error(`bad ping answer from ${peerId}`)
  return rttMs
}
