/**
 * The push protocol on the receiving node: a one-way stream of PushMessages from the servers of previous spans.
 * Each is offered to its session, which runs it at once if the client named the sender as that session's `prev` and
 * the step fits the cache exactly, and otherwise holds it until the client's step names it (see inference-handler).
 */
import type { Connection, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { Deadline, MAX_PUSH_TOKENS, parsePushMessage } from '@swarm/protocol'
import type { SessionTable } from './session-table.js'

export interface PushContext {
  table: SessionTable
  /** hidden size of the model: bounds a push frame */
  dim: number
  /** a push stream with nothing on it for this long is closed (the sender opens a new one when it needs it), ms */
  idleTimeoutMs: number
  log: (message: string) => void
}

export async function handlePushStream (ctx: PushContext, stream: Stream, connection: Connection): Promise<void> {
  const from = connection.remotePeer.toString()
  // a push holds at most MAX_PUSH_TOKENS positions of f32 hidden states plus a small envelope
  const maxFrameBytes = MAX_PUSH_TOKENS * ctx.dim * 4 + 1024
  const lp = lpStream(stream, { maxDataLength: maxFrameBytes, maxBufferSize: 2 * maxFrameBytes })
  // one timer for the stream's life, restarted before each read (see Deadline)
  const idle = new Deadline(ctx.idleTimeoutMs)
  try {
    for (;;) {
      idle.restart()
      const frame = await lp.read({ signal: idle.signal })
      idle.pause()
      // there is no answer to a push: a malformed one ends the stream, as its sender is broken or hostile
      const message = parsePushMessage(frame.subarray(), { maxFrameBytes })
      ctx.table.get(message.sessionId)?.push(message, from)
    }
  } catch (err) {
    if (stream.status === 'open') ctx.log(`push stream from ${from.slice(-8)} ended: ${(err as Error).message}`)
    stream.abort(err instanceof Error ? err : new Error(String(err)))
  } finally {
    idle.clear()
  }
}
