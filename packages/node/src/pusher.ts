/**
 * Outbound server-to-server pushes (PUSH_PROTOCOL): one stream per next-span server, opened on first use and shared
 * by every session that pushes there. A push is best-effort and never delays or fails the step that made it: the
 * client forwards every output itself too, so a push that is late, refused or lost only costs its head start.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { PUSH_PROTOCOL, type SwarmHost } from '@swarm/protocol'

type Lp = ReturnType<typeof lpStream<Stream>>
interface PushStream { stream: Stream, lp: Lp }

/** most peers with an open push stream (a client names the peers, so this is bounded) */
const MAX_PUSH_PEERS = 64
/** after a peer could not be reached or its stream failed, no pushes to it for this long, ms */
const RETRY_AFTER_MS = 10_000
const DIAL_TIMEOUT_MS = 5_000
const WRITE_TIMEOUT_MS = 5_000

export class Pusher {
  private readonly streams = new Map<string, Promise<PushStream>>()
  private readonly failedUntil = new Map<string, number>()
  private closed = false

  constructor (
    private readonly host: SwarmHost,
    private readonly log: (message: string) => void
  ) {}

  /** queues one frame (an encoded PushMessage) to `peerId`; returns at once */
  push (peerId: string, frame: Uint8Array): void {
    if (this.closed || peerId === this.host.peerId.toString()) return
    const until = this.failedUntil.get(peerId)
    if (until !== undefined) {
      if (until > Date.now()) return
      this.failedUntil.delete(peerId)
    }
    const entry = this.streams.get(peerId) ?? this.open(peerId)
    if (entry === undefined) return
    // writes to one peer keep their order: each waits on the same stream promise, in the order they were queued
    entry
      .then(async ({ lp }) => { await lp.write(frame, { signal: AbortSignal.timeout(WRITE_TIMEOUT_MS) }) })
      .catch(err => { this.fail(peerId, entry, err) })
  }

  async close (): Promise<void> {
    this.closed = true
    const entries = [...this.streams.values()]
    this.streams.clear()
    await Promise.all(entries.map(async entry => {
      const opened = await entry.catch(() => undefined)
      if (opened === undefined) return
      await opened.stream.close({ signal: AbortSignal.timeout(1000) }).catch(() => { opened.stream.abort(new Error('node stopping')) })
    }))
  }

  /** dials a push stream to `peerId` and keeps it for the next pushes; undefined when MAX_PUSH_PEERS are open */
  private open (peerId: string): Promise<PushStream> | undefined {
    if (this.streams.size >= MAX_PUSH_PEERS) return undefined
    const entry = (async () => {
      const stream = await this.host.dialProtocol(peerIdFromString(peerId), PUSH_PROTOCOL, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
      // the receiver never writes; once it closes or resets the stream, the next push opens a new one
      stream.addEventListener('close', () => { if (this.streams.get(peerId) === entry) this.streams.delete(peerId) })
      return { stream, lp: lpStream(stream) }
    })()
    this.streams.set(peerId, entry)
    return entry
  }

  private fail (peerId: string, entry: Promise<PushStream>, err: unknown): void {
    if (this.streams.get(peerId) !== entry) return
    this.streams.delete(peerId)
    if (this.failedUntil.size > 4 * MAX_PUSH_PEERS) this.failedUntil.clear()
    this.failedUntil.set(peerId, Date.now() + RETRY_AFTER_MS)
    entry.then(({ stream }) => { stream.abort(err instanceof Error ? err : new Error(String(err))) }, () => {})
    this.log(`push to ${peerId.slice(-8)} failed (${(err as Error).message}); the client forwards its steps for ${RETRY_AFTER_MS / 1000} s`)
  }
}
