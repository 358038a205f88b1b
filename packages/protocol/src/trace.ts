/**
 * Step tracing for finding where a token's time goes across processes. Off unless SWARM_TRACE names a file prefix:
 * then every process (client, node) keeps `time event session position` lines in memory and writes them to
 * `${SWARM_TRACE}.${pid}` when it exits, so tracing costs no I/O on the step path. Times are CLOCK_MONOTONIC
 * nanoseconds (process.hrtime.bigint()), one clock for every process and thread of the machine.
 * `node scripts/trace-swarm.mjs PREFIX` turns the files into a per-token breakdown.
 */
import { appendFileSync } from 'node:fs'

const prefix = process.env.SWARM_TRACE
const tracing = prefix !== undefined && prefix !== ''
/** at most this many events are kept (a long-running node must not grow without bound) */
const MAX_EVENTS = 1_000_000
const events: string[] = []

/** records `event` for `session` at token `position`, now or at `at` (a process.hrtime.bigint() value) */
export function trace (event: string, session: string, position: number, at?: bigint): void {
  if (!tracing || events.length >= MAX_EVENTS) return
  events.push(`${at ?? process.hrtime.bigint()} ${event} ${session.slice(0, 8)} ${position}`)
}

if (tracing) {
  process.on('exit', () => {
    if (events.length > 0) appendFileSync(`${prefix}.${process.pid}`, events.join('\n') + '\n')
  })
}
