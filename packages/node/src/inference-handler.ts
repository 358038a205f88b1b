/**
 * The inference protocol on the node side: one stream per span session (open -> step* -> close). Every frame is
 * validated before anything is allocated; every failure goes back as a typed error and the node keeps serving.
 */
import type { Connection, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import {
  BlocksNotServedError, decodeTensor, encodeNodeMessage, encodeTensor, errorMessage, FrameTooLargeError, InvalidTensorError,
  MalformedMessageError, MAX_FRAME_BYTES, OutOfOrderError, parseClientMessage, TimeoutError, TooLongError,
  WrongModelError, type OpenMessage, type StepMessage, type WireDtype
} from '@swarm/protocol'
import type { Compute } from './compute.js'
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
  ctx.table.add({
    id,
    blocks,
    reserved,
    close: reason => { closedBy = reason; idle.abort() }
  })
  ctx.onChange()
  ctx.log(`session ${id.slice(0, 8)} opened by ${remote.slice(-8)}: blocks [${blocks[0]}, ${blocks[1]}), maxLength ${open.maxLength}`)

  let length = 0
  let lastStepId = -1
  try {
    await send(lp, { type: 'opened', sessionId: id, cacheTokensLeft: ctx.table.cacheTokensLeft })
    for (;;) {
      let frame
      const timeout = AbortSignal.timeout(ctx.idleTimeoutMs)
      try {
        frame = await lp.read({ signal: AbortSignal.any([timeout, idle.signal]) })
      } catch (err) {
        if (timeout.aborted) throw new TimeoutError(`session idle for ${ctx.idleTimeoutMs} ms`)
        if (idle.signal.aborted) throw new TimeoutError(`session closed: ${closedBy ?? 'node stopping'}`)
        throw err
      }
      let step: StepMessage
      try {
        const message = parseClientMessage(frame.subarray())
        if (message.type === 'close') break
        if (message.type === 'open') throw new MalformedMessageError('this stream already has an open session')
        step = message
      } catch (err) {
        await send(lp, errorMessage(err))
        continue
      }
      try {
        if (step.stepId <= lastStepId) throw new OutOfOrderError(`step ${step.stepId} after step ${lastStepId}`)
        const start = step.startFrom ?? length
        if (step.startFrom !== undefined && step.startFrom > length) {
          throw new OutOfOrderError(`cannot start from position ${step.startFrom}: the cache holds ${length} tokens`)
        }
        if (step.position !== start) throw new OutOfOrderError(`step at position ${step.position}, but the cache holds ${length} tokens`)
        const { shape } = step.hidden
        const T = shape.length === 3 ? shape[1] : shape[0]
        if (shape.length === 3 && shape[0] !== 1) throw new InvalidTensorError(`batches of ${shape[0]} sequences are not supported; send one sequence per session`)
        if (shape[shape.length - 1] !== ctx.dim) throw new InvalidTensorError(`hidden size ${shape[shape.length - 1]} does not match the model's ${ctx.dim}`)
        if (start + T > open.maxLength) throw new TooLongError(`step would grow the session to ${start + T} tokens, maxLength is ${open.maxLength}`)
        const hidden = decodeTensor(step.hidden)
        const reply = await ctx.compute.call({ op: 'step', session: id, blocks, hidden: hidden.data, T, startFrom: step.startFrom })
        length = start + T
        lastStepId = step.stepId
        const dtype: WireDtype = open.dtype ?? step.hidden.dtype
        await send(lp, { type: 'result', stepId: step.stepId, hidden: encodeTensor(reply.hidden!, shape, dtype) })
      } catch (err) {
        lastStepId = Math.max(lastStepId, step.stepId)
        await send(lp, errorMessage(err, step.stepId))
      }
    }
    await stream.close().catch(() => {})
  } catch (err) {
    await fail(lp, stream, err)
  } finally {
    ctx.table.remove(id)
    await ctx.compute.call({ op: 'close', session: id }).catch(() => {})
    ctx.onChange()
    ctx.log(`session ${id.slice(0, 8)} closed after ${length} tokens${closedBy !== undefined ? ` (${closedBy})` : ''}`)
  }
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
