/**
 * The inference sessions of a node and the KV cache budget they share. The budget is counted in token-blocks
 * (one position of KV in one block): a session of maxLength m over k blocks reserves m*k up front, so a node never
 * runs out of cache mid-generation; what does not fit is refused with BusyError.
 */
import { BusyError, SessionExistsError, type PushMessage } from '@swarm/protocol'

export interface ServedSession {
  id: string
  blocks: [number, number]
  /** token-blocks reserved */
  reserved: number
  /** ends the session from outside (idle timeout, shutdown) */
  close: (reason: string) => void
  /** offers the session a step pushed by peer `from` (it runs it, or holds it for the client's step to name) */
  push: (message: PushMessage, from: string) => void
}

export class SessionTable {
  private readonly sessions = new Map<string, ServedSession>()
  private used = 0

  constructor (
    /** token-blocks the caches may take in all */
    readonly capacity: number,
    readonly maxSessions: number,
    /** blocks the node serves: converts token-blocks to the "cache tokens left" it announces */
    private readonly servedBlocks: number
  ) {}

  get size (): number { return this.sessions.size }

  /** cache tokens (over all served blocks) still free */
  get cacheTokensLeft (): number {
    return Math.floor((this.capacity - this.used) / this.servedBlocks)
  }

  /** fraction of the budget in use, 0..1 */
  get load (): number {
    return Math.min(1, Math.max(this.used / this.capacity, this.sessions.size / this.maxSessions))
  }

  /** checks that a session of `maxLength` over `nBlocks` fits, before its cache is allocated */
  reserve (id: string, maxLength: number, nBlocks: number): number {
    if (this.sessions.has(id)) throw new SessionExistsError(`session ${id} is already open on this node`)
    if (this.sessions.size >= this.maxSessions) throw new BusyError(`node is busy: ${this.sessions.size} sessions open (limit ${this.maxSessions})`)
    const need = maxLength * nBlocks
    if (this.used + need > this.capacity) {
      throw new BusyError(`node is busy: a session of ${maxLength} tokens over ${nBlocks} blocks needs ${need} cache token-blocks, ${this.capacity - this.used} free`)
    }
    this.used += need
    return need
  }

  /** returns a reservation whose session never opened */
  unreserve (amount: number): void {
    this.used -= amount
  }

  add (session: ServedSession): void {
    this.sessions.set(session.id, session)
  }

  /** removes a session and frees its reservation; idempotent */
  remove (id: string): void {
    const session = this.sessions.get(id)
    if (session === undefined) return
    this.sessions.delete(id)
    this.used -= session.reserved
  }

  get (id: string): ServedSession | undefined {
    return this.sessions.get(id)
  }

  all (): ServedSession[] {
    return [...this.sessions.values()]
  }
}
