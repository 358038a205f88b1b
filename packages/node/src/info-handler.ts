/** The info protocol on the node side: what the node serves (info-request -> info) and RTT probes (ping -> pong). */
import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { encodeInfoResponse, errorToWire, MAX_FRAME_BYTES, parseInfoRequest, type InfoMessage } from '@swarm/protocol'
import { frameError } from './inference-handler.js'

/** largest info frame: a ping payload (RTT/throughput probe) of up to 64 KiB plus headers */
const MAX_INFO_FRAME_BYTES = Math.min(MAX_FRAME_BYTES, 64 * 1024 + 1024)

export async function handleInfoStream (info: () => InfoMessage, stream: Stream): Promise<void> {
  const lp = lpStream(stream, { maxDataLength: MAX_INFO_FRAME_BYTES, maxBufferSize: 2 * MAX_INFO_FRAME_BYTES })
  try {
    let response
    try {
      const frame = await lp.read({ signal: AbortSignal.timeout(10_000) }).catch(err => {
        // a frame over the limit is refused from its length prefix alone, with a typed error; other read failures
        // (EOF, reset, timeout) end the stream below
        const typed = frameError(err)
        throw typed === err ? new ReadFailed(err) : typed
      })
      const request = parseInfoRequest(frame.subarray(), { maxFrameBytes: MAX_INFO_FRAME_BYTES })
      response = request.type === 'ping'
        ? { type: 'pong' as const, nonce: request.nonce, ...(request.payload !== undefined ? { payload: request.payload } : {}) }
        : info()
    } catch (err) {
      if (err instanceof ReadFailed) throw err.cause
      response = { type: 'error' as const, ...errorToWire(err) }
    }
    await lp.write(encodeInfoResponse(response, { maxFrameBytes: MAX_INFO_FRAME_BYTES }), { signal: AbortSignal.timeout(10_000) })
    await stream.close({ signal: AbortSignal.timeout(2_000) })
  } catch (err) {
    stream.abort(err as Error)
  }
}

class ReadFailed extends Error {
  constructor (cause: unknown) {
    super('read failed', { cause })
    this.name = 'ReadFailed'
  }
}
