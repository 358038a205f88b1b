/**
 * The client's view of the servers of one model: verified DHT records, measured RTTs and the peers it has banned
 * after failures (exponential backoff). Refreshed periodically and on demand (after a failure).
 */
import type { SwarmHost } from '@swarm/protocol'
import { discoverRecords, measureRtt, rememberAddrs } from './discovery.js'
import { findRoute, serverViewOf, type RouteOptions, type ServerView, type Span } from './routing.js'

export interface BanPolicy {
  /** first ban of a failed peer, ms; doubles with each further failure */
  baseMs: number
  maxMs: number
}

export const DEFAULT_BAN_POLICY: BanPolicy = { baseMs: 15_000, maxMs: 300_000 }
/** a view older than this is refreshed before routing, ms */
export const DEFAULT_VIEW_MAX_AGE_MS = 30_000

export class ModelView {
  servers: ServerView[] = []
  private refreshedAt = -Infinity
  private refreshing: Promise<void> | undefined
  private readonly bans = new Map<string, { until: number, count: number }>()

  constructor (
    private readonly host: SwarmHost,
    readonly modelId: string,
    readonly nBlocks: number,
    private readonly log: (message: string) => void = () => {},
    private readonly banPolicy: BanPolicy = DEFAULT_BAN_POLICY
  ) {}

  /** looks the servers up again, leaving out banned peers (one lookup at a time; concurrent callers share it) */
  async refresh (signal?: AbortSignal): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const records = await discoverRecords(this.host, this.modelId, { signal, log: this.log, skip: this.banned() })
        const servers = records.map(serverViewOf)
        await Promise.all(records.map(async (record, i) => {
          await rememberAddrs(this.host, record)
          try {
            servers[i].rttMs = await measureRtt(this.host, record.peerId, { signal })
          } catch (err) {
            signal?.throwIfAborted()
            this.log(`${record.peerId} does not answer: ${(err as Error).message}`)
            servers[i].rttMs = Infinity
          }
        }))
        this.servers = servers.filter(s => s.rttMs !== Infinity)
        this.refreshedAt = performance.now()
      } finally {
        this.refreshing = undefined
      }
    })()
    await this.refreshing
  }

  async ensureFresh (maxAgeMs = DEFAULT_VIEW_MAX_AGE_MS, signal?: AbortSignal): Promise<void> {
    if (performance.now() - this.refreshedAt > maxAgeMs) await this.refresh(signal)
  }

  ban (peerId: string): number {
    const previous = this.bans.get(peerId)
    const count = (previous?.count ?? 0) + 1
    const ms = Math.min(this.banPolicy.maxMs, this.banPolicy.baseMs * 2 ** (count - 1))
    this.bans.set(peerId, { until: Date.now() + ms, count })
    return ms
  }

  banned (): Set<string> {
    const now = Date.now()
    const out = new Set<string>()
    for (const [peer, ban] of this.bans) if (ban.until > now) out.add(peer)
    return out
  }

  route (options: RouteOptions = {}): Span[] {
    const exclude = new Set([...this.banned(), ...(options.exclude ?? [])])
    return findRoute(this.servers, this.nBlocks, { ...options, exclude })
  }
}
