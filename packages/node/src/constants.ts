/** Defaults of `swarm-node serve` (see ServerOptions for what each means). */

/** most concurrent inference sessions */
export const DEFAULT_MAX_SESSIONS = 64
/** KV cache budget, tokens over all served blocks (a session of maxLength m over k of n blocks takes m*k/n) */
export const DEFAULT_CACHE_TOKENS = 8192
/** a session with no step for this long is closed and its cache freed, ms */
export const DEFAULT_SESSION_IDLE_TIMEOUT_MS = 300_000
/** the first frame of a new stream (open) must arrive within this, ms */
export const DEFAULT_OPEN_TIMEOUT_MS = 10_000
/** on SIGINT/SIGTERM open sessions get this long to finish before their streams are closed, ms */
export const DEFAULT_DRAIN_TIMEOUT_MS = 5_000
/** concurrent inbound inference streams per connection */
export const MAX_INBOUND_INFERENCE_STREAMS = 256
/** concurrent inbound push streams per connection (a sender needs one) */
export const MAX_INBOUND_PUSH_STREAMS = 4
