/**
 * The inference protocol on the node side: one stream per span session (open -> step* -> close). Every frame is
 * validated before anything is allocated; every failure goes back as a typed error and the node keeps serving.
 */
import type { Connection, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import {
  BlocksNotServedError, Deadline, decodeTensor, encodeNodeMessage, encodePushMessage, encodeTensor, errorMessage, FrameTooLargeError,
  InvalidTensorError, MalformedMessageError, MAX_FRAME_BYTES, MAX_PUSH_TOKENS, OutOfOrderError, parseClientMessage,
  PUSH_WAIT_MS, PushMissingError, TimeoutError, trace, TooLongError, WrongModelError, type OpenMessage, type PushMessage,
  type StepMessage, type WireDtype, type WireTensor
} from '@swarm/protocol'
import { ComputeError, type Compute } from './compute.js'
import type { Pusher } from './pusher.js'
import type { SessionTable } from './session-table.js'

export interface InferenceContext {
  modelId: string
  /** blocks served [start, end) */
  blocks: [number, number]
  dim: number
  /** the model's context length: the longest session accepted */
  contextLength: number
  table: SessionTable
  compute: Compute
  /** sends step outputs on to the next span's server when the client asks for it (step.next) */
  pusher?: Pusher
  idleTimeoutMs: number
  openTimeoutMs: number
  /** peers allowed to open sessions (undefined: everyone) */
  allowPeers?: Set<string>
  log: (message: string) => void
  /** called when sessions open or close (the record's cache figures change) */
  onChange: () => void
}

type Lp = ReturnType<typeof lpStream<Stream>>

async function send (lp: Lp, message: Parameters<typeof encodeNodeMessage>[0]): Promise<void> {
  await lp.write(encodeNodeMessage(message))
}

/** largest open frame: a handful of small fields */
const MAX_OPEN_FRAME_BYTES = 4096
/** msgpack envelope of a step frame beyond its tensor bytes (type, ids, dtype, shape) */
const STEP_FRAME_OVERHEAD_BYTES = 1024

export async function handleInferenceStream (ctx: InferenceContext, stream: Stream, connection: Connection): Promise<void> {
  // before the open is accepted a peer may send only small frames; after it, frames up to the largest step the
  // session can take, so what one stream can make the node buffer stays proportional to the cache it reserved
  let lp = lpStream(stream, { maxDataLength: MAX_OPEN_FRAME_BYTES, maxBufferSize: 4 * MAX_OPEN_FRAME_BYTES })
  const remote = connection.remotePeer.toString()
  let open: OpenMessage
  try {
    const frame = await lp.read({ signal: AbortSignal.timeout(ctx.openTimeoutMs) })
    const message = parseClientMessage(frame.subarray())
    if (message.type !== 'open') throw new MalformedMessageError(`the first message of a session must be open, got ${message.type}`)
    open = message
    if (ctx.allowPeers !== undefined && !ctx.allowPeers.has(remote)) throw new BlocksNotServedError(`peer ${remote} is not allowed to open sessions on this node`)
    if (open.modelId !== ctx.modelId) throw new WrongModelError(`this node serves model ${ctx.modelId}, not ${open.modelId}`)
    const [a, b] = open.blocks
    if (a < ctx.blocks[0] || b > ctx.blocks[1]) {
      throw new BlocksNotServedError(`blocks [${a}, ${b}) are not all served here (this node serves [${ctx.blocks[0]}, ${ctx.blocks[1]}))`)
    }
    if (open.maxLength > ctx.contextLength) throw new TooLongError(`maxLength ${open.maxLength} exceeds the model's context length ${ctx.contextLength}`)
  } catch (err) {
    await fail(lp, stream, err)
    return
  }

  const blocks = open.blocks
  const id = open.sessionId
  const maxStepBytes = Math.min(MAX_FRAME_BYTES, open.maxLength * ctx.dim * 4 + STEP_FRAME_OVERHEAD_BYTES)
  lp = lpStream(lp.unwrap(), { maxDataLength: maxStepBytes, maxBufferSize: maxStepBytes + MAX_OPEN_FRAME_BYTES })
  let reserved: number
  try {
    reserved = ctx.table.reserve(id, open.maxLength, blocks[1] - blocks[0])
  } catch (err) {
    await fail(lp, stream, err)
    return
  }
  let closedBy: string | undefined
  const idle = new AbortController()
  try {
    await ctx.compute.call({ op: 'open', session: id, blocks, maxLength: open.maxLength })
  } catch (err) {
    ctx.table.unreserve(reserved)
    await fail(lp, stream, err)
    return
  }
  let length = 0
  let lastStepId = -1
  /** the peer whose push this session accepts for its next step, and where its small steps' outputs go (client's) */
  let prev: string | undefined
  let next: string | undefined
  /** a step run from a push whose copy from the client has not come yet */
  let pushed: { stepId: number, position: number, T: number } | undefined
  /** the latest push not run when it came (its sender was not yet the session's prev): a client step may name it */
  let inbox: { message: PushMessage, from: string } | undefined
  /** a client step whose input is a push that has not come yet (StepMessage.pushedTokens) */
  let awaiting: { stepId: number, position: number, T: number, from: string, timer: ReturnType<typeof setTimeout> } | undefined
  let pushedSteps = 0
  /** client steps that came without their input (it was pushed) */
  let stepsWithoutInput = 0
  // steps from the client and from pushes run one at a time, in arrival order
  let busy: Promise<void> = Promise.resolve()
  const exclusive = async (fn: () => Promise<void>): Promise<void> => {
    const run = busy.then(fn)
    busy = run.catch(() => {})
    await run
  }

  /** checks a step against the session, runs it, pushes its output on if asked, answers it as `stepId` */
  const run = async (stepId: number, hidden: WireTensor, position: number, startFrom: number | undefined): Promise<void> => {
    const start = startFrom ?? length
    if (startFrom !== undefined && startFrom > length) {
      throw new OutOfOrderError(`cannot start from position ${startFrom}: the cache holds ${length} tokens`)
    }
    if (position !== start) throw new OutOfOrderError(`step at position ${position}, but the cache holds ${length} tokens`)
    const { shape } = hidden
    const T = tokensOf(shape)
    if (shape.length === 3 && shape[0] !== 1) throw new InvalidTensorError(`batches of ${shape[0]} sequences are not supported; send one sequence per session`)
    if (shape[shape.length - 1] !== ctx.dim) throw new InvalidTensorError(`hidden size ${shape[shape.length - 1]} does not match the model's ${ctx.dim}`)
    if (start + T > open.maxLength) throw new TooLongError(`step would grow the session to ${start + T} tokens, maxLength is ${open.maxLength}`)
    const input = decodeTensor(hidden)
    const reply = await ctx.compute.call({ op: 'step', session: id, blocks, hidden: input.data, T, startFrom })
    trace(`compute-start@${blocks[0]}`, id, start, reply.startedAt)
    trace(`compute-end@${blocks[0]}`, id, start, reply.endedAt)
    length = start + T
    lastStepId = stepId
    const out = encodeTensor(reply.hidden!, shape, open.dtype ?? hidden.dtype)
    let pushedOut = false
    if (next !== undefined && ctx.pusher !== undefined && startFrom === undefined && T <= MAX_PUSH_TOKENS) {
      pushedOut = ctx.pusher.push(next, encodePushMessage({ type: 'push', sessionId: id, position: start, hidden: out }))
      trace(`push-sent@${blocks[0]}`, id, start)
      // the next server's compute is what the client waits for: the push leaves (its socket is uncorked at the end
      // of this tick) before the result is encoded and sent
      if (pushedOut) await new Promise(resolve => setImmediate(resolve))
    }
    await send(lp, pushedOut ? { type: 'result', stepId, hidden: out, pushed: true } : { type: 'result', stepId, hidden: out })
    trace(`result-sent@${blocks[0]}`, id, start)
  }

  /** runs a step from a push and answers it as `stepId`; true when it ran (or its compute failed, which is its answer) */
  const runPushed = async (stepId: number, message: PushMessage): Promise<boolean> => {
    try {
      await run(stepId, message.hidden, message.position, undefined)
      pushedSteps++
      return true
    } catch (err) {
      // a push that does not fit the session is not run (the client's copy gets the typed error, or push-missing);
      // a failure to compute is this step's answer
      if (!(err instanceof ComputeError)) return false
      lastStepId = stepId
      await send(lp, errorMessage(err, stepId))
      return true
    }
  }

  const onPush = (message: PushMessage, from: string): void => {
    trace(`push-frame@${blocks[0]}`, id, message.position)
    exclusive(async () => {
      const T = tokensOf(message.hidden.shape)
      if (T > MAX_PUSH_TOKENS) return
      if (awaiting !== undefined && from === awaiting.from && message.position === awaiting.position && T === awaiting.T) {
        // the push a client step is waiting for
        const { stepId, timer } = awaiting
        clearTimeout(timer)
        awaiting = undefined
        if (!await runPushed(stepId, message)) {
          await send(lp, errorMessage(new PushMissingError(`the push for step ${stepId} did not fit the session`), stepId))
        }
        return
      }
      // ahead of the client: only from the peer the client named, only the very next step, only one step ahead
      if (awaiting === undefined && from === prev && pushed === undefined && message.position === length) {
        const stepId = lastStepId + 1
        if (await runPushed(stepId, message)) {
          pushed = { stepId, position: message.position, T }
          return
        }
      }
      inbox = { message, from }
    }).catch(err => { ctx.log(`session ${id.slice(0, 8)}: pushed step failed: ${(err as Error).message}`) })
  }

  /**
   * a client step (in order) whose input is the push of step.prev: runs the push it names, or waits PUSH_WAIT_MS for
   * it
   */
  const takePushed = async (step: StepMessage, T: number): Promise<void> => {
    if (step.position !== length) throw new OutOfOrderError(`step at position ${step.position}, but the cache holds ${length} tokens`)
    const held = inbox
    inbox = undefined
    if (held !== undefined && held.from === step.prev && held.message.position === step.position && tokensOf(held.message.hidden.shape) === T) {
      if (await runPushed(step.stepId, held.message)) return
      throw new PushMissingError(`the push for step ${step.stepId} did not fit the session`)
    }
    const stepId = step.stepId
    const timer = setTimeout(() => {
      exclusive(async () => {
        if (awaiting?.stepId !== stepId) return
        awaiting = undefined
        await send(lp, errorMessage(new PushMissingError(`no push from ${step.prev!.slice(-8)} for step ${stepId} within ${PUSH_WAIT_MS} ms`), stepId))
      }).catch(() => {})
    }, PUSH_WAIT_MS)
    awaiting = { stepId, position: step.position, T, from: step.prev!, timer }
  }

  ctx.table.add({
    id,
    blocks,
    reserved,
    close: reason => { closedBy = reason; idle.abort() },
    push: onPush
  })
  ctx.onChange()
  ctx.log(`session ${id.slice(0, 8)} opened by ${remote.slice(-8)}: blocks [${blocks[0]}, ${blocks[1]}), maxLength ${open.maxLength}`)

  // one timer for the session's life, restarted before each read (see Deadline)
  const idleDeadline = new Deadline(ctx.idleTimeoutMs, idle.signal)
  try {
    await send(lp, { type: 'opened', sessionId: id, cacheTokensLeft: ctx.table.cacheTokensLeft, takesPushedInput: true })
    for (;;) {
      let frame
      idleDeadline.restart()
      try {
        frame = await lp.read({ signal: idleDeadline.signal })
        // a step may take longer than the idle timeout: only the wait for the next frame counts
        idleDeadline.pause()
      } catch (err) {
        if (idleDeadline.expired) throw new TimeoutError(`session idle for ${ctx.idleTimeoutMs} ms`)
        if (idle.signal.aborted) throw new TimeoutError(`session closed: ${closedBy ?? 'node stopping'}`)
        throw err
      }
      let step: StepMessage
      try {
        const message = parseClientMessage(frame.subarray())
        if (message.type === 'close') break
        if (message.type === 'open') throw new MalformedMessageError('this stream already has an open session')
        step = message
        trace(`frame@${blocks[0]}`, id, step.position)
      } catch (err) {
        await exclusive(async () => { await send(lp, errorMessage(err)) })
        continue
      }
      await exclusive(async () => {
        prev = step.prev
        next = step.next
        const T = step.pushedTokens ?? tokensOf(step.hidden!.shape)
        if (pushed !== undefined && step.stepId === pushed.stepId) {
          // the client's copy of a step already run from a push: it was answered then
          const same = step.position === pushed.position && T === pushed.T && step.startFrom === undefined
          pushed = undefined
          if (step.pushedTokens !== undefined) stepsWithoutInput++
          if (same) return
          lastStepId = Math.max(lastStepId, step.stepId)
          await send(lp, errorMessage(new OutOfOrderError(`step ${step.stepId} differs from the step pushed to this session as ${step.stepId}`), step.stepId))
          return
        }
        pushed = undefined
        if (awaiting !== undefined) {
          // a client step while one waits for its push: the client gave up on it
          clearTimeout(awaiting.timer)
          awaiting = undefined
        }
        try {
          if (step.stepId <= lastStepId) throw new OutOfOrderError(`step ${step.stepId} after step ${lastStepId}`)
          if (step.pushedTokens !== undefined) {
            stepsWithoutInput++
            await takePushed(step, T)
            return
          }
          await run(step.stepId, step.hidden!, step.position, step.startFrom)
        } catch (err) {
          // push-missing leaves the step to be sent again with its input
          if (!(err instanceof PushMissingError)) lastStepId = Math.max(lastStepId, step.stepId)
          await send(lp, errorMessage(err, step.stepId))
        }
      })
    }
    await stream.close().catch(() => {})
  } catch (err) {
    await fail(lp, stream, err)
  } finally {
    idleDeadline.clear()
    if (awaiting !== undefined) clearTimeout(awaiting.timer)
    ctx.table.remove(id)
    await busy
    await ctx.compute.call({ op: 'close', session: id }).catch(() => {})
    ctx.onChange()
    ctx.log(`session ${id.slice(0, 8)} closed after ${length} tokens (${pushedSteps} steps pushed, ${stepsWithoutInput} client steps without input)${closedBy !== undefined ? ` (${closedBy})` : ''}`)
  }
}

/** tokens T of hidden states shaped [T, hidden] or [B, T, hidden] */
function tokensOf (shape: readonly number[]): number {
  return shape.length === 3 ? shape[1] : shape[0]
}

/**
 * The typed error for a failed read: lpStream reports a length prefix over its maxDataLength as
 * InvalidDataLength(Length)Error, which the peer must see as frame-too-large, not as an internal error.
 */
export function frameError (err: unknown): unknown {
  const name = err instanceof Error ? err.name : ''
  if (name === 'InvalidDataLengthError' || name === 'InvalidDataLengthLengthError') {
    return new FrameTooLargeError(`frame over this stream's limit: ${(err as Error).message}`, { cause: err })
  }
  return err
}

/** sends a typed error if the stream still takes it, then closes the stream */
async function fail (lp: Lp, stream: Stream, err: unknown): Promise<void> {
  try {
    await lp.write(encodeNodeMessage(errorMessage(frameError(err))), { signal: AbortSignal.timeout(1000) })
    await stream.close({ signal: AbortSignal.timeout(1000) })
  } catch {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
  }
}
