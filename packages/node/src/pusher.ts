/**
 * Outbound server-to-server pushes (PUSH_PROTOCOL): one stream per next-span server, opened on first use and shared
 * by every session that pushes there. A push is best-effort and never fails the step that made it: the client gets
 * every output too, and sends the next server its copy when a push was not sent or did not arrive.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { Deadline, PUSH_PROTOCOL, type SwarmHost } from '@swarm/protocol'

type Lp = ReturnType<typeof lpStream<Stream>>
interface PushStream { stream: Stream, lp: Lp }
/** a push stream being dialled (`ready`), and once it is open, its stream (`open`) */
interface Entry { ready: Promise<PushStream>, open?: PushStream }

/** most peers with an open push stream (a client names the peers, so this is bounded) */
const MAX_PUSH_PEERS = 64
/** after a peer could not be reached or its stream failed, no pushes to it for this long, ms */
const RETRY_AFTER_MS = 10_000
const DIAL_TIMEOUT_MS = 5_000
const WRITE_TIMEOUT_MS = 5_000

export class Pusher {
  private readonly streams = new Map<string, Entry>()
  private readonly failedUntil = new Map<string, number>()
  private closed = false

  constructor (
    private readonly host: SwarmHost,
    private readonly log: (message: string) => void
  ) {}

  /**
   * Sends one frame (an encoded PushMessage) to `peerId`: at once when its stream is open, else once it is. False
   * when nothing will be sent (a peer that failed recently, too many peers, ourselves). A frame that is sent can
   * still be lost with its stream: the receiver answers the client's step push-missing after PUSH_WAIT_MS.
   */
  push (peerId: string, frame: Uint8Array): boolean {
    if (this.closed || peerId === this.host.peerId.toString()) return false
    const until = this.failedUntil.get(peerId)
    if (until !== undefined) {
      if (until > Date.now()) return false
      this.failedUntil.delete(peerId)
    }
    const entry = this.streams.get(peerId) ?? this.dial(peerId)
    if (entry === undefined) return false
    const write = async ({ lp }: PushStream): Promise<void> => {
      // the deadline matters only when the stream's send buffer is full (lp.write then waits for it to drain)
      const deadline = new Deadline(WRITE_TIMEOUT_MS)
      try {
        await lp.write(frame, { signal: deadline.signal })
      } finally {
        deadline.clear()
      }
    }
    // on an open stream the write's synchronous part (muxer frame, encryption, socket write) runs now, ahead of the
    // step's result; pushes of one session are a compute step apart, so they cannot overtake writes still queued on
    // `ready`, which run in the order they were queued
    const written = entry.open !== undefined ? write(entry.open) : entry.ready.then(write)
    written.catch(err => { this.fail(peerId, entry, err) })
    return true
  }

  async close (): Promise<void> {
    this.closed = true
    const entries = [...this.streams.values()]
    this.streams.clear()
    await Promise.all(entries.map(async entry => {
      const opened = await entry.ready.catch(() => undefined)
      if (opened === undefined) return
      await opened.stream.close({ signal: AbortSignal.timeout(1000) }).catch(() => { opened.stream.abort(new Error('node stopping')) })
    }))
  }

  /** dials a push stream to `peerId` and keeps it for the next pushes; undefined when MAX_PUSH_PEERS are open */
  private dial (peerId: string): Entry | undefined {
    if (this.streams.size >= MAX_PUSH_PEERS) return undefined
    const ready = (async () => {
      const stream = await this.host.dialProtocol(peerIdFromString(peerId), PUSH_PROTOCOL, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
      return { stream, lp: lpStream(stream) }
    })()
    const entry: Entry = { ready }
    this.streams.set(peerId, entry)
    // runs before the writes queued on `ready`
    ready.then(opened => {
      if (this.streams.get(peerId) !== entry) return
      // the receiver never writes; once it closes or resets the stream, the next push opens a new one
      opened.stream.addEventListener('close', () => { this.forget(peerId, entry) })
      if (opened.stream.status === 'open') entry.open = opened
      else this.forget(peerId, entry)
    }, () => {})
    return entry
  }

  private forget (peerId: string, entry: Entry): void {
    if (this.streams.get(peerId) === entry) this.streams.delete(peerId)
  }

  private fail (peerId: string, entry: Entry, err: unknown): void {
    if (this.streams.get(peerId) !== entry) return
    this.forget(peerId, entry)
    if (this.failedUntil.size > 4 * MAX_PUSH_PEERS) this.failedUntil.clear()
    this.failedUntil.set(peerId, Date.now() + RETRY_AFTER_MS)
    entry.ready.then(({ stream }) => { stream.abort(err instanceof Error ? err : new Error(String(err))) }, () => {})
    this.log(`push to ${peerId.slice(-8)} failed (${(err as Error).message}); the client forwards its steps for ${RETRY_AFTER_MS / 1000} s`)
  }
}
