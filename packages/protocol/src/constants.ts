/**
 * Version of the wire protocol; its major part is the one in every protocol id below. 1.1.0 added the info protocol's
 * record-request (a 1.0 node answers it with a malformed-message error; clients then read the DHT's copy).
 */
export const PROTOCOL_VERSION = '1.1.0'

/** One bidirectional stream per span session: open -> step* -> close. */
export const INFERENCE_PROTOCOL = '/swarm/inference/1.0.0'

/**
 * Server-to-server push (Petals' rpc_push), one-way: a node sends the output of a small step straight to the server
 * of the next span, which runs it before the client's step for it arrives (see PushMessage).
 */
export const PUSH_PROTOCOL = '/swarm/push/1.0.0'

/** Steps of at most this many tokens (decode steps) are pushed; longer ones (prefill, replay) go through the client. */
export const MAX_PUSH_TOKENS = 16

/**
 * How long a node holds a step whose input is to come as a push (StepMessage.pushedTokens) before it answers
 * push-missing, ms. The push left the previous server before that server's result reached the client, so it is
 * normally already there; this bounds the stall when it was lost.
 */
export const PUSH_WAIT_MS = 1000

/** Request/response: node info, ping (RTT) and ping with payload (throughput). */
export const INFO_PROTOCOL = '/swarm/info/1.0.0'

/**
 * Kademlia protocol id of the swarm's private DHT (kadDHT({ protocol: DHT_PROTOCOL })), so public IPFS peers never
 * join our routing tables.
 */
export const DHT_PROTOCOL = '/swarm/kad/1.0.0'

/** First segment of every swarm DHT key (`/swarm/<modelId>/<peerId>`): the validators/selectors map key. */
export const DHT_KEY_NAMESPACE = 'swarm'

/** Hard maximum of one frame (one message), bytes. Pass it as lpStream's maxDataLength; callers may lower it. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024

/** Maximum size of a DHT value ({ record, sig } msgpack), bytes. */
export const MAX_RECORD_VALUE_BYTES = 16 * 1024

/** Default lifetime of a signed DHT record (expiresAt = now + this), ms. */
export const DEFAULT_RECORD_TTL_MS = 30_000

/** Default interval at which a node re-signs and re-puts its record (well inside the TTL), ms. */
export const DEFAULT_RECORD_REFRESH_MS = 10_000

/** Records claiming to live longer than this from now are rejected, so a dead peer cannot linger for days, ms. */
export const MAX_RECORD_TTL_MS = 60 * 60 * 1000

/** Default validity of provider records on the model CID (kadDHT({ reprovide: { validity } })), ms. */
export const DEFAULT_PROVIDER_TTL_MS = 60_000

/** Largest tensor rank accepted on the wire. */
export const MAX_TENSOR_RANK = 8

/** Largest element count of one wire tensor (a 64 MiB frame holds at most 32 Mi f16 values). */
export const MAX_TENSOR_ELEMENTS = 64 * 1024 * 1024

/** Largest block index + 1 accepted in a block range [start, end). */
export const MAX_BLOCKS = 4096

/** Largest session length (tokens) a client may ask for. */
export const MAX_SESSION_LENGTH = 1 << 20

/** Largest length of a model id string, characters. */
export const MAX_MODEL_ID_LENGTH = 128

/** Largest length of an error message on the wire, characters (longer ones are truncated when sent). */
export const MAX_ERROR_MESSAGE_LENGTH = 4096

/** Largest number of multiaddrs in a record, and length of each, characters. */
export const MAX_RECORD_ADDRS = 32
export const MAX_ADDR_LENGTH = 512

/** Largest length of a version string, characters. */
export const MAX_VERSION_LENGTH = 64

/** Structural limits applied to every msgpack frame before it is decoded (see msgpack.ts). */
export const MAX_MSGPACK_DEPTH = 16
export const MAX_MSGPACK_CONTAINER_LENGTH = 4096
export const MAX_MSGPACK_ITEMS = 65_536
export const MAX_MSGPACK_STRING_BYTES = 64 * 1024
