/**
 * Deadlines for waits taken once per message. `AbortSignal.timeout(ms)` allocates a signal and arms a timer that
 * stays armed until it fires, however soon the wait ended; when it fires it builds a DOMException (stack included)
 * and dispatches an abort event that nobody listens to any more. A node serving a session at 30 tokens/s armed
 * about 60 of them a second that way (each read of a step, each push), every one firing seconds to minutes later,
 * and a client three per token; with `AbortSignal.any` each took about 15 us before the message could go.
 *
 * A Deadline is one AbortController and one timer: `clear()` disarms it when the wait is over. A read loop keeps a
 * single one for its whole life: `restart()` before each read starts the time from then, `pause()` after it stops
 * the time from counting while the frame is handled. Like AbortSignal.timeout, its timer does not
 * keep Node running, and it aborts with a DOMException named 'TimeoutError'.
 */
export class Deadline {
  /** aborted when the deadline passes or `parent` aborts */
  readonly signal: AbortSignal
  private readonly controller = new AbortController()
  private readonly timer: NodeJS.Timeout
  private passed = false
  private paused = false
  private readonly onParentAbort: (() => void) | undefined

  constructor (readonly ms: number, private readonly parent?: AbortSignal) {
    this.signal = this.controller.signal
    // a timer that fires while paused does nothing; restart() re-arms it (refresh() re-arms a timer that has fired)
    this.timer = setTimeout(() => {
      if (this.paused) return
      this.passed = true
      this.controller.abort(new DOMException(`no progress within ${ms} ms`, 'TimeoutError'))
    }, ms).unref()
    if (parent?.aborted === true) {
      this.controller.abort(parent.reason)
    } else if (parent !== undefined) {
      this.onParentAbort = () => { this.controller.abort(parent.reason) }
      parent.addEventListener('abort', this.onParentAbort, { once: true })
    }
  }

  /** the time ran out (as opposed to the parent aborting) */
  get expired (): boolean { return this.passed }

  /** starts the time again from now (after pause() too); no effect once the signal has aborted */
  restart (): void {
    if (this.signal.aborted) return
    this.paused = false
    this.timer.refresh()
  }

  /** the time stops counting until restart() */
  pause (): void {
    this.paused = true
  }

  /** disarms the timer and lets go of the parent; the signal stays as it is */
  clear (): void {
    clearTimeout(this.timer)
    if (this.onParentAbort !== undefined) this.parent?.removeEventListener('abort', this.onParentAbort)
  }
}
