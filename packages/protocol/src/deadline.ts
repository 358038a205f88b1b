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
  private timer: ReturnType<typeof setTimeout>
  private passed = false
  private paused = false
  private readonly onParentAbort: (() => void) | undefined

  constructor (readonly ms: number, private readonly parent?: AbortSignal) {
    this.signal = this.controller.signal
    this.timer = this.arm()
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
    const timer = this.timer as { refresh?: () => unknown }
    if (typeof timer.refresh === 'function') {
      timer.refresh()
    } else {
      // timers without refresh() (browsers): a new one
      clearTimeout(this.timer)
      this.timer = this.arm()
    }
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

  private arm (): ReturnType<typeof setTimeout> {
    // a timer that fires while paused does nothing; restart() re-arms it (refresh() re-arms a timer that has fired)
    const timer = setTimeout(() => {
      if (this.paused) return
      this.passed = true
      this.controller.abort(new DOMException(`no progress within ${this.ms} ms`, 'TimeoutError'))
    }, this.ms)
    unref(timer)
    return timer
  }
}

function unref (timer: ReturnType<typeof setTimeout>): void {
  const t = timer as { unref?: () => unknown }
  if (typeof t.unref === 'function') t.unref()
}
