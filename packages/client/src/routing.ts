/**
 * Route planning: the minimum-latency chain of spans covering blocks [0, nBlocks). Graph nodes are block
 * boundaries 0..nBlocks; serving peer s (range [a, b)) gives an edge i -> j for every a <= i < j <= b, so a route may
 * enter a node's range in the middle and leave it early. Edge cost (ms): one round trip to s (every hop returns to
 * the client) + per-block compute time from the advertised throughput, scaled up by the advertised load, + a
 * penalty when s has too little cache left for the session. Dijkstra over the boundaries.
 */
import type { SwarmRecord } from '@swarm/protocol'
import { MissingBlocksError } from './errors.js'

export interface ServerView {
  peerId: string
  /** blocks served [start, end) */
  blocks: [number, number]
  /** decode tokens/s through one block */
  inferenceThroughput: number
  /** prefill tokens/s through one block */
  forwardThroughput: number
  /** 0..1 */
  load: number
  cacheTokensLeft: number
  addrs: string[]
  /** measured round trip, ms (undefined: not measured yet) */
  rttMs?: number
}

export interface Span {
  peerId: string
  start: number
  end: number
  server: ServerView
}

export interface RouteOptions {
  /** session length the route must hold in every server's cache */
  maxLength?: number
  /** peers not to use (banned after failures) */
  exclude?: ReadonlySet<string>
  /** blocks to cover: [from, to) (default the whole model) */
  from?: number
  to?: number
  /** added to each edge (ms) for tie-breaking between equal servers; default a small random amount */
  jitter?: () => number
}

/** RTT assumed for a server not measured yet, ms */
const DEFAULT_RTT_MS = 20
/** cost of a route hop through a server whose cache cannot hold the session, ms (still usable as a last resort) */
const SHORT_CACHE_PENALTY_MS = 10_000

export function serverViewOf (record: SwarmRecord): ServerView {
  return {
    peerId: record.peerId,
    blocks: [record.blocks[0], record.blocks[1]],
    inferenceThroughput: record.throughput.inference,
    forwardThroughput: record.throughput.forward,
    load: record.load,
    cacheTokensLeft: record.cacheTokensLeft,
    addrs: record.addrs
  }
}

/** blocks in [from, to) that no usable server covers, as ranges */
export function missingBlocks (servers: readonly ServerView[], from: number, to: number, exclude: ReadonlySet<string> = new Set()): Array<[number, number]> {
  const covered = new Array<boolean>(to - from).fill(false)
  for (const s of servers) {
    if (exclude.has(s.peerId)) continue
    for (let b = Math.max(from, s.blocks[0]); b < Math.min(to, s.blocks[1]); b++) covered[b - from] = true
  }
  const ranges: Array<[number, number]> = []
  for (let b = 0; b < covered.length; b++) {
    if (covered[b]) continue
    const last = ranges[ranges.length - 1]
    if (last !== undefined && last[1] === from + b) last[1]++
    else ranges.push([from + b, from + b + 1])
  }
  return ranges
}

export function formatRanges (ranges: Array<[number, number]>): string {
  return ranges.map(([a, b]) => b - a === 1 ? `${a}` : `${a}-${b - 1}`).join(', ')
}

/** The minimum-cost route over blocks [from, to); throws MissingBlocksError naming the blocks nobody serves. */
export function findRoute (servers: readonly ServerView[], nBlocks: number, options: RouteOptions = {}): Span[] {
  const from = options.from ?? 0
  const to = options.to ?? nBlocks
  const exclude = options.exclude ?? new Set<string>()
  const jitter = options.jitter ?? (() => Math.random() * 0.01)
  const usable = servers.filter(s => !exclude.has(s.peerId) && s.blocks[0] < to && s.blocks[1] > from)
  const missing = missingBlocks(usable, from, to)
  if (missing.length > 0) {
    throw new MissingBlocksError(`no server for block${missing.length === 1 && missing[0][1] - missing[0][0] === 1 ? '' : 's'} ${formatRanges(missing)} of this model`, missing)
  }
  const n = to - from
  const dist = new Array<number>(n + 1).fill(Infinity)
  const prev = new Array<{ at: number, server: ServerView } | undefined>(n + 1)
  const done = new Array<boolean>(n + 1).fill(false)
  dist[0] = 0
  for (;;) {
    // n is small (blocks of one model): a linear scan beats a heap here
    let u = -1
    for (let i = 0; i <= n; i++) if (!done[i] && dist[i] < Infinity && (u < 0 || dist[i] < dist[u])) u = i
    if (u < 0 || u === n) break
    done[u] = true
    const block = from + u
    for (const s of usable) {
      if (s.blocks[0] > block || s.blocks[1] <= block) continue
      const hop = (s.rttMs ?? DEFAULT_RTT_MS) + jitter() +
        (options.maxLength !== undefined && s.cacheTokensLeft < options.maxLength ? SHORT_CACHE_PENALTY_MS : 0)
      const perBlockMs = 1000 / Math.max(1e-6, s.inferenceThroughput) * (1 + 4 * s.load)
      for (let end = block + 1; end <= Math.min(to, s.blocks[1]); end++) {
        const v = end - from
        const cost = dist[u] + hop + perBlockMs * (end - block)
        if (cost < dist[v]) {
          dist[v] = cost
          prev[v] = { at: u, server: s }
        }
      }
    }
  }
  const spans: Span[] = []
  for (let v = n; v > 0;) {
    const p = prev[v]!
    spans.unshift({ peerId: p.server.peerId, start: from + p.at, end: from + v, server: p.server })
    v = p.at
  }
  return spans
}
