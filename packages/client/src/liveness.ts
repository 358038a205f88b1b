/**
 * Finding a hung server (SIGSTOPped, a laptop gone to sleep with its TCP still open) while the client waits on it.
 *
 * A step's answer can be slow for good reasons (a long prefill, a slow device), so silence alone proves nothing; a
 * server that stops answering pings does. Nodes answer pings while they compute (they hand the event loop back every
 * few ms). A Watchdog is armed for each wait on a server: once `quietMs` pass without the answer, it pings the server
 * (libp2p's ping protocol, on the connection the client already has) and, while the wait goes on, again every
 * `quietMs`; a ping that fails or takes longer than the probe's timeout reports the server hung.
 *
 * Pings go only to a server the client is waiting on, and only after `quietMs`, so a generation at tens of tokens a
 * second sends none. (libp2p's connection monitor pinged every connection of every process each second instead: about
 * 20 ping streams a second in a 3-node swarm on one machine, each waking two processes while a node computed.)
 */
import { peerIdFromString } from '@libp2p/peer-id'
import type { SwarmHost } from '@swarm/protocol'
import { PeerUnresponsiveError } from './errors.js'

/** Pings servers for a client host: one ping in flight per server, however many waits ask for it. */
export class PeerProbe {
  /** pings sent (for tests and diagnostics) */
  pings = 0
  private readonly inFlight = new Map<string, Promise<void>>()

  constructor (private readonly host: SwarmHost, readonly timeoutMs: number) {}

  /** resolves when `peerId` answers a ping within timeoutMs, rejects with PeerUnresponsiveError otherwise */
  async ping (peerId: string): Promise<void> {
    let running = this.inFlight.get(peerId)
    if (running === undefined) {
      this.pings++
      running = (async () => {
        try {
          await this.host.services.ping.ping(peerIdFromString(peerId), { signal: AbortSignal.timeout(this.timeoutMs) })
        } catch (err) {
          throw new PeerUnresponsiveError(`no answer to a ping within ${this.timeoutMs} ms (${(err as Error).message})`, { cause: err })
        } finally {
          this.inFlight.delete(peerId)
        }
      })()
      this.inFlight.set(peerId, running)
    }
    await running
  }
}

/** the probes of each client host by ping timeout, so every session of a client with the same policy shares one */
const probes = new WeakMap<SwarmHost, Map<number, PeerProbe>>()

export function probeOf (host: SwarmHost, timeoutMs: number): PeerProbe {
  let byTimeout = probes.get(host)
  if (byTimeout === undefined) {
    byTimeout = new Map()
    probes.set(host, byTimeout)
  }
  let probe = byTimeout.get(timeoutMs)
  if (probe === undefined) {
    probe = new PeerProbe(host, timeoutMs)
    byTimeout.set(timeoutMs, probe)
  }
  return probe
}

/**
 * Watches one server across the waits of one session, one wait at a time: arm() when a wait starts, disarm() when it
 * ends. One timer for the watchdog's life (re-armed, never re-created), so a wait costs no allocation.
 */
export class Watchdog {
  private timer: NodeJS.Timeout | undefined
  private armed = false
  /** counts waits, so a ping's outcome only acts on the wait it was sent for */
  private wait = 0

  constructor (
    private readonly probe: PeerProbe,
    private readonly peerId: string,
    private readonly quietMs: number,
    /** called once per wait at most, while it is still armed, when the server did not answer a ping */
    private readonly onHung: (err: PeerUnresponsiveError) => void
  ) {}

  arm (): void {
    this.armed = true
    this.wait++
    if (this.timer === undefined) this.timer = setTimeout(() => { this.fire() }, this.quietMs).unref()
    else this.timer.refresh()
  }

  disarm (): void {
    this.armed = false
  }

  private fire (): void {
    if (!this.armed) return
    const wait = this.wait
    this.probe.ping(this.peerId).then(() => {
      // alive: look again after another quiet period, if this wait is still on
      if (this.armed && this.wait === wait) this.timer!.refresh()
    }, (err: PeerUnresponsiveError) => {
      if (this.armed && this.wait === wait) {
        this.armed = false
        this.onHung(err)
      }
    })
  }
}
