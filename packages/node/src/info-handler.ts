/**
 * The info protocol on the node side: what the node serves (info-request -> info), RTT probes (ping -> pong), and the
 * node's current signed DHT record (record-request -> record).
 */
import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { encodeInfoResponse, errorToWire, MAX_FRAME_BYTES, parseInfoRequest, WrongModelError, type InfoMessage, type InfoResponse } from '@swarm/protocol'
import { frameError } from './inference-handler.js'

/** largest info frame: a ping payload (RTT/throughput probe) of up to 64 KiB plus headers */
const MAX_INFO_FRAME_BYTES = Math.min(MAX_FRAME_BYTES, 64 * 1024 + 1024)

export interface InfoSource {
  modelId: string
  info: () => InfoMessage
  /** the signed record value last announced (or about to be) */
  record: () => Uint8Array
}

export async function handleInfoStream (source: InfoSource, stream: Stream): Promise<void> {
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
      response = answer(source, request)
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

function answer (source: InfoSource, request: ReturnType<typeof parseInfoRequest>): InfoResponse {
  switch (request.type) {
    case 'ping': return { type: 'pong', nonce: request.nonce, ...(request.payload !== undefined ? { payload: request.payload } : {}) }
    case 'info-request': return source.info()
    case 'record-request':
      if (request.modelId !== source.modelId) throw new WrongModelError(`this node serves model ${source.modelId}, not ${request.modelId}`)
      return { type: 'record', value: source.record() }
  }
}

class ReadFailed extends Error {
  constructor (cause: unknown) {
    super('read failed', { cause })
    this.name = 'ReadFailed'
  }
}
