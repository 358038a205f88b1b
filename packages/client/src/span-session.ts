/** The client side of one span session: one inference stream to one server for blocks [start, end). */
import { peerIdFromString } from '@libp2p/peer-id'
import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import {
  Deadline, decodeTensor, encodeClientMessage, encodeTensor, errorFromWire, INFERENCE_PROTOCOL, MAX_FRAME_BYTES,
  parseNodeMessage, PushMissingError, trace, type SwarmHost, type WireDtype
} from '@swarm/protocol'
import { SpanFailedError, type PeerUnresponsiveError } from './errors.js'
import { Watchdog, type PeerProbe } from './liveness.js'

export interface SpanSessionOptions {
  sessionId: string
  modelId: string
  start: number
  end: number
  maxLength: number
  /** hidden size of the model */
  dim: number
  /** dtype of hidden states on the wire (f32 keeps results equal to a local run) */
  wireDtype: WireDtype
  signal?: AbortSignal
  /** deadline of the open handshake, ms */
  openTimeoutMs: number
  /** pings the server when it is quiet this long while we wait on it (see liveness.ts) */
  probe: PeerProbe
  probeAfterMs: number
}

export class SpanSession {
  readonly peerId: string
  readonly start: number
  readonly end: number
  readonly sessionId: string
  private readonly stream: Stream
  private readonly lp: ReturnType<typeof lpStream<Stream>>
  private readonly wireDtype: WireDtype
  private stepId = 0
  private closed = false
  /** the server takes steps whose input is a push (its `opened` said so) */
  private takesPushedInput = false
  private readonly watchdog: Watchdog
  /** the server stopped answering pings during a wait (the stream was aborted for it) */
  private hung: PeerUnresponsiveError | undefined

  private constructor (peerId: string, options: SpanSessionOptions, stream: Stream, watchdog: Watchdog) {
    this.peerId = peerId
    this.start = options.start
    this.end = options.end
    this.sessionId = options.sessionId
    this.stream = stream
    this.wireDtype = options.wireDtype
    // a result is never larger than the session's longest step, so a server cannot make us buffer more
    const maxFrameBytes = Math.min(MAX_FRAME_BYTES, options.maxLength * options.dim * 4 + 4096)
    this.lp = lpStream(stream, { maxDataLength: maxFrameBytes, maxBufferSize: 2 * maxFrameBytes })
    this.watchdog = watchdog
  }

  static async open (host: SwarmHost, peerId: string, options: SpanSessionOptions): Promise<SpanSession> {
    // one watchdog for the session's life, from the dial on: the dial and the handshake are waits on the server too,
    // and a hung one is found long before the open deadline
    let session: SpanSession | undefined
    let hung: PeerUnresponsiveError | undefined
    const onHung = new AbortController()
    const watchdog = new Watchdog(options.probe, peerId, options.probeAfterMs, err => {
      if (session === undefined) {
        hung = err
        onHung.abort(err)
      } else {
        session.hung = err
        session.abort(err)
      }
    })
    const signal = AbortSignal.any([AbortSignal.timeout(options.openTimeoutMs), onHung.signal, ...(options.signal !== undefined ? [options.signal] : [])])
    watchdog.arm()
    let stream: Stream
    try {
      stream = await host.dialProtocol(peerIdFromString(peerId), INFERENCE_PROTOCOL, { signal })
    } catch (err) {
      watchdog.disarm()
      options.signal?.throwIfAborted()
      throw new SpanFailedError(`cannot reach ${peerId}: ${hung?.message ?? (err as Error).message}`, peerId, { cause: hung ?? err })
    }
    session = new SpanSession(peerId, options, stream, watchdog)
    try {
      await session.lp.write(encodeClientMessage({
        type: 'open', sessionId: options.sessionId, modelId: options.modelId, blocks: [options.start, options.end], maxLength: options.maxLength
      }), { signal })
      const reply = parseNodeMessage((await session.lp.read({ signal })).subarray())
      if (reply.type === 'error') throw errorFromWire(reply)
      if (reply.type !== 'opened' || reply.sessionId !== options.sessionId) throw new Error(`unexpected ${reply.type} answer to open`)
      session.takesPushedInput = reply.takesPushedInput === true
    } catch (err) {
      session.abort(err)
      options.signal?.throwIfAborted()
      const unresponsive = session.hung ?? hung
      const what = unresponsive !== undefined ? 'hung while opening' : 'refused'
      throw new SpanFailedError(`${peerId} ${what} blocks [${options.start}, ${options.end}): ${unresponsive?.message ?? (err as Error).message}`, peerId, { cause: unresponsive ?? err })
    } finally {
      watchdog.disarm()
    }
    return session
  }

  /**
   * Runs hidden states [T, dim] at `position` through the span; `startFrom` rewinds the server's cache first
   * (replays). Any failure is a SpanFailedError naming this peer; the session is unusable afterwards.
   * `next` / `prev`: the servers of the neighbouring spans, for server-to-server push (see StepMessage): this server
   * pushes the output of a small step to `next`, and accepts its next step from `prev`. `pushedInput`: `prev` said it
   * pushed `hidden` here, so the step goes without it (the server runs the push), and with it if the push is missing.
   * `pushed` in the answer: this server pushed its output to `next`.
   */
  async step (hidden: Float32Array, T: number, dim: number, position: number, options: { startFrom?: number, next?: string, prev?: string, pushedInput?: boolean, signal?: AbortSignal, deadlineMs: number }): Promise<{ hidden: Float32Array, pushed: boolean }> {
    if (this.closed) throw new SpanFailedError(`session on ${this.peerId} is closed`, this.peerId)
    const stepId = this.stepId++
    const deadline = new Deadline(options.deadlineMs, options.signal)
    const signal = deadline.signal
    // absent options stay off the wire: the encoder validates into a fresh message of the fields that are set
    const message = { type: 'step' as const, stepId, position, startFrom: options.startFrom, next: options.next, prev: options.prev }
    const light = options.pushedInput === true && this.takesPushedInput && options.prev !== undefined && options.startFrom === undefined
    this.watchdog.arm()
    try {
      trace(`send@${this.start}`, this.sessionId, position)
      await this.lp.write(encodeClientMessage(light ? { ...message, pushedTokens: T } : { ...message, hidden: encodeTensor(hidden, [T, dim], this.wireDtype) }), { signal })
      let reply = parseNodeMessage((await this.lp.read({ signal })).subarray())
      if (light && reply.type === 'error' && reply.code === PushMissingError.code && reply.stepId === stepId) {
        // the push did not come: the same step with its input
        await this.lp.write(encodeClientMessage({ ...message, hidden: encodeTensor(hidden, [T, dim], this.wireDtype) }), { signal })
        reply = parseNodeMessage((await this.lp.read({ signal })).subarray())
      }
      trace(`recv@${this.start}`, this.sessionId, position)
      if (reply.type === 'error') throw errorFromWire(reply)
      if (reply.type !== 'result' || reply.stepId !== stepId) throw new Error(`unexpected ${reply.type} answer to step ${stepId}`)
      const out = decodeTensor(reply.hidden)
      if (out.data.length !== T * dim) throw new Error(`result of ${out.data.length} values for a step of ${T} x ${dim}`)
      return { hidden: out.data, pushed: reply.pushed === true }
    } catch (err) {
      this.abort(err)
      options.signal?.throwIfAborted()
      const why = this.hung?.message ?? (deadline.expired ? `no answer within ${options.deadlineMs} ms` : (err as Error).message)
      throw new SpanFailedError(`${this.peerId} failed on blocks [${this.start}, ${this.end}): ${why}`, this.peerId, { cause: this.hung ?? err })
    } finally {
      this.watchdog.disarm()
      deadline.clear()
    }
  }

  /** ends the session politely (the server frees its cache at once) */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    try {
      await this.lp.write(encodeClientMessage({ type: 'close' }), { signal: AbortSignal.timeout(1000) })
      await this.stream.close({ signal: AbortSignal.timeout(1000) })
    } catch {
      this.stream.abort(new Error('close failed'))
    }
  }

  private abort (err: unknown): void {
    this.closed = true
    this.stream.abort(err instanceof Error ? err : new Error(String(err)))
  }
}
