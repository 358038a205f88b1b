/**
 * One generation's pipeline through the swarm: a chain of span sessions covering every block. Each step sends the
 * hidden states through the chain; the input each span received is kept (history at the span's first block), so
 * when a server fails the client bans it, routes its blocks anew (possibly over several servers, possibly entering
 * a range mid-span), replays the history into the replacements to rebuild their KV caches, and continues the
 * step. Spans that did not fail keep their sessions and caches.
 */
import { newSessionId, trace, type SwarmHost, type WireDtype } from '@swarm/protocol'
import { ClosedError, MissingBlocksError, RetriesExhaustedError, SpanFailedError } from './errors.js'
import { probeOf } from './liveness.js'
import type { ModelView } from './model-view.js'
import { SpanSession } from './span-session.js'

export interface RetryPolicy {
  /** most reroutes in the life of one session */
  maxReroutes: number
  /** deadline of one step on one server: base, ms ... */
  stepTimeoutMs: number
  /** ... plus this much per token in the step (prefill, replay), ms */
  stepTimeoutPerTokenMs: number
  /** deadline of opening a span session, ms */
  openTimeoutMs: number
  /** when no route exists, wait this long for servers to (re)appear before giving up, ms */
  noRouteWaitMs: number
  /**
   * a server we wait on that is quiet this long gets pinged, and again every as long while the wait goes on; one
   * that does not answer a ping within probeTimeoutMs has hung and is failed over (see liveness.ts), ms
   */
  probeAfterMs: number
  probeTimeoutMs: number
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxReroutes: 16,
  stepTimeoutMs: 20_000,
  stepTimeoutPerTokenMs: 50,
  openTimeoutMs: 10_000,
  noRouteWaitMs: 10_000,
  probeAfterMs: 500,
  probeTimeoutMs: 1000
}

/** What the SDK reports when a session changes its route. */
export interface RerouteEvent {
  /** the peer that failed and is now banned */
  failedPeer: string
  /** blocks it was serving for this session */
  blocks: [number, number]
  reason: string
  /** the replacement spans */
  replacement: Array<{ peerId: string, blocks: [number, number] }>
  /** positions replayed into the replacements */
  replayedTokens: number
  /** time from the failure to the rebuilt route, ms */
  recoveryMs: number
}

export interface InferenceSessionOptions {
  maxLength: number
  wireDtype?: WireDtype
  retry?: Partial<RetryPolicy>
  signal?: AbortSignal
  /**
   * Server-to-server push (default true): each server sends the output of a decode step straight to the next
   * span's server, which starts on it at once; the client then sends that server the step without its input (or
   * with it, when the push was not sent or is missing). Outputs stay exactly the same; the client still receives
   * every span's output (for failover).
   */
  serverToServer?: boolean
  onReroute?: (event: RerouteEvent) => void
  log?: (message: string) => void
}

export class InferenceSession {
  readonly maxLength: number
  private readonly id = newSessionId()
  private spans: SpanSession[] = []
  /** per block boundary that starts a span: the hidden states that entered it, one chunk per step */
  private readonly history = new Map<number, Float32Array[]>()
  private length = 0
  private reroutes = 0
  private closed = false
  private readonly policy: RetryPolicy
  private readonly wireDtype: WireDtype
  private readonly log: (message: string) => void

  private constructor (
    private readonly host: SwarmHost,
    private readonly view: ModelView,
    private readonly dim: number,
    private readonly options: InferenceSessionOptions
  ) {
    this.maxLength = options.maxLength
    this.policy = validateRetryPolicy({ ...DEFAULT_RETRY_POLICY, ...options.retry })
    this.wireDtype = options.wireDtype ?? 'f32'
    this.log = options.log ?? (() => {})
  }

  static async open (host: SwarmHost, view: ModelView, dim: number, options: InferenceSessionOptions): Promise<InferenceSession> {
    const session = new InferenceSession(host, view, dim, options)
    await view.ensureFresh(undefined, options.signal)
    session.spans = await session.openRoute(0, view.nBlocks, options.signal)
    return session
  }

  /** tokens processed so far */
  get position (): number { return this.length }

  /** the current route: peer and blocks of every span */
  get route (): Array<{ peerId: string, blocks: [number, number] }> {
    return this.spans.map(s => ({ peerId: s.peerId, blocks: [s.start, s.end] }))
  }

  /** Runs hidden states [T, dim] (the next T positions) through every block; returns the final hidden states. */
  async step (hidden: Float32Array, T: number, options: { signal?: AbortSignal } = {}): Promise<Float32Array> {
    if (this.closed) throw new ClosedError('the inference session is closed')
    if (hidden.length !== T * this.dim) throw new RangeError(`hidden states hold ${hidden.length} values, expected ${T} x ${this.dim}`)
    if (this.length + T > this.maxLength) throw new RangeError(`step would grow the session to ${this.length + T} tokens, maxLength is ${this.maxLength}`)
    const signal = anySignal(this.options.signal, options.signal)
    const position = this.length
    trace('client-step', this.spans[0]?.sessionId ?? '-', position)
    const push = this.options.serverToServer !== false
    let x = hidden
    // the server of the previous span pushed x to this span's server (it was named as `next` and said so)
    let pushedInput = false
    for (let i = 0; i < this.spans.length;) {
      const span = this.spans[i]
      this.remember(span.start, position, x)
      try {
        const out = await span.step(x, T, this.dim, position, {
          signal,
          deadlineMs: this.deadline(T),
          ...(push ? { next: this.spans[i + 1]?.peerId, prev: this.spans[i - 1]?.peerId, pushedInput } : {})
        })
        x = out.hidden
        pushedInput = out.pushed
        i++
      } catch (err) {
        signal?.throwIfAborted()
        if (!(err instanceof SpanFailedError)) throw err
        await this.reroute(i, err, position, signal)
        // retry span i (now the first replacement, which nobody pushed to) with the same input
        pushedInput = false
      }
    }
    this.length = position + T
    trace('client-done', this.spans[0]?.sessionId ?? '-', position)
    return x
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.all(this.spans.map(async s => { await s.close() }))
    this.spans = []
    this.history.clear()
  }

  private deadline (T: number): number {
    return this.policy.stepTimeoutMs + this.policy.stepTimeoutPerTokenMs * T
  }

  private remember (boundary: number, position: number, x: Float32Array): void {
    let chunks = this.history.get(boundary)
    if (chunks === undefined) {
      if (position !== 0) throw new Error(`no history at block ${boundary} for position ${position}`)
      chunks = []
      this.history.set(boundary, chunks)
    }
    const have = chunks.reduce((n, c) => n + c.length, 0) / this.dim
    if (have === position) chunks.push(x)
    else if (have !== position + x.length / this.dim) throw new Error(`history at block ${boundary} holds ${have} positions, step is at ${position}`)
  }

  /** replaces failed span i: ban, route its blocks anew, replay the history of positions [0, position) */
  private async reroute (i: number, failure: SpanFailedError, position: number, signal: AbortSignal | undefined): Promise<void> {
    const started = performance.now()
    const failed = this.spans[i]
    if (++this.reroutes > this.policy.maxReroutes) {
      throw new RetriesExhaustedError(`gave up after ${this.policy.maxReroutes} reroutes; last failure: ${failure.message}`, { cause: failure })
    }
    const banMs = this.view.ban(failure.peerId)
    this.log(`${failure.message}; banned for ${banMs} ms, rerouting blocks [${failed.start}, ${failed.end})`)
    const replacement = await this.openRoute(failed.start, failed.end, signal)
    // rebuild the replacements' caches: the history entering the failed span, through each replacement in turn
    let input = concat(this.history.get(failed.start) ?? [], position * this.dim)
    for (const [k, span] of replacement.entries()) {
      if (k > 0) this.history.set(span.start, [input])
      if (position > 0) {
        try {
          input = (await span.step(input, position, this.dim, 0, { startFrom: 0, signal, deadlineMs: this.deadline(position) })).hidden
        } catch (err) {
          await Promise.all(replacement.map(async s => { await s.close() }))
          signal?.throwIfAborted()
          if (!(err instanceof SpanFailedError)) throw err
          // a replacement failed too: ban it and route the failed span's blocks once more
          return await this.reroute(i, err, position, signal)
        }
      }
    }
    this.spans.splice(i, 1, ...replacement)
    for (const boundary of this.history.keys()) {
      if (!this.spans.some(s => s.start === boundary)) this.history.delete(boundary)
    }
    this.options.onReroute?.({
      failedPeer: failure.peerId,
      blocks: [failed.start, failed.end],
      reason: failure.message,
      replacement: replacement.map(s => ({ peerId: s.peerId, blocks: [s.start, s.end] })),
      replayedTokens: position,
      recoveryMs: performance.now() - started
    })
  }

  /** routes blocks [from, to) and opens a span session on each server; servers that refuse are banned and routed around */
  private async openRoute (from: number, to: number, signal: AbortSignal | undefined): Promise<SpanSession[]> {
    const deadline = Date.now() + this.policy.noRouteWaitMs
    /** the last server that refused us here: when no route is left, it says why (e.g. every node is busy) */
    let refusal: SpanFailedError | undefined
    for (let attempt = 0; ; attempt++) {
      let spans
      try {
        spans = this.view.route({ from, to, maxLength: this.maxLength })
      } catch (err) {
        if (!(err instanceof MissingBlocksError) || Date.now() > deadline) {
          if (err instanceof MissingBlocksError && refusal !== undefined) {
            throw new MissingBlocksError(`${err.message}: the servers that cover them refused (${refusal.message})`, err.missing, { cause: refusal })
          }
          throw err
        }
        // the failed server's blocks may be served by a node we have not seen yet: look again
        await sleep(attempt === 0 ? 0 : 500, signal)
        await this.view.refresh(signal)
        continue
      }
      const opened: SpanSession[] = []
      try {
        for (const s of spans) {
          opened.push(await SpanSession.open(this.host, s.peerId, {
            sessionId: this.id, modelId: this.view.modelId, start: s.start, end: s.end, maxLength: this.maxLength, dim: this.dim,
            wireDtype: this.wireDtype, signal, openTimeoutMs: this.policy.openTimeoutMs,
            probe: probeOf(this.host, this.policy.probeTimeoutMs), probeAfterMs: this.policy.probeAfterMs
          }))
        }
        return opened
      } catch (err) {
        await Promise.all(opened.map(async s => { await s.close() }))
        signal?.throwIfAborted()
        if (!(err instanceof SpanFailedError)) throw err
        if (++this.reroutes > this.policy.maxReroutes) {
          throw new RetriesExhaustedError(`gave up after ${this.policy.maxReroutes} attempts; last failure: ${err.message}`, { cause: err })
        }
        refusal = err
        this.view.ban(err.peerId)
        this.log(`${err.message}; trying another route`)
      }
    }
  }
}

/**
 * What each policy value may be: a count (an integer >= 0), a timer's time (ms > 0: the watchdog and the deadlines
 * need time to pass) or a time that may be 0 (ms >= 0). Every RetryPolicy key must have its rule here.
 */
const RETRY_RULES: Record<keyof RetryPolicy, 'count' | 'timer' | 'ms'> = {
  maxReroutes: 'count',
  stepTimeoutMs: 'timer',
  stepTimeoutPerTokenMs: 'ms',
  openTimeoutMs: 'timer',
  noRouteWaitMs: 'ms',
  probeAfterMs: 'timer',
  probeTimeoutMs: 'timer'
}
const RULE_TEXT = { count: 'an integer >= 0', timer: 'a number of ms > 0', ms: 'a number of ms >= 0' }

/** a policy's values must be numbers in range: the watchdog's and deadlines' timers take them as they are */
function validateRetryPolicy (policy: RetryPolicy): RetryPolicy {
  for (const [key, value] of Object.entries(policy)) {
    if (!Object.hasOwn(RETRY_RULES, key)) throw new RangeError(`unknown retry option ${key}`)
    const rule = RETRY_RULES[key as keyof RetryPolicy]
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (rule === 'timer' && value === 0) || (rule === 'count' && !Number.isInteger(value))) {
      throw new RangeError(`retry.${key} must be ${RULE_TEXT[rule]}, got ${String(value)}`)
    }
  }
  return policy
}

function concat (chunks: Float32Array[], length: number): Float32Array {
  const out = new Float32Array(length)
  let offset = 0
  for (const c of chunks) {
    out.set(c.subarray(0, Math.min(c.length, length - offset)), offset)
    offset += c.length
    if (offset >= length) break
  }
  return out
}

function anySignal (...signals: Array<AbortSignal | undefined>): AbortSignal | undefined {
  const present = signals.filter((s): s is AbortSignal => s !== undefined)
  return present.length === 0 ? undefined : present.length === 1 ? present[0] : AbortSignal.any(present)
}

async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) return
  signal?.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => { clearTimeout(timer); reject(signal!.reason) }
    const timer = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
