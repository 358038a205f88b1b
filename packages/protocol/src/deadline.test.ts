import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { Deadline } from './deadline.js'

/** `d`, counting from now, is still running 1 ms before `ms` have passed and has expired when they have */
function expectExpiresIn (d: Deadline, ms: number): void {
  vi.advanceTimersByTime(ms - 1)
  expect(d.signal.aborted).toBe(false)
  vi.advanceTimersByTime(1)
  expect(d.signal.aborted).toBe(true)
  expect(d.expired).toBe(true)
}

describe('Deadline', () => {
  beforeEach(() => { vi.useFakeTimers() })
  afterEach(() => { vi.useRealTimers() })

  it('aborts with a TimeoutError when its time passes', () => {
    const d = new Deadline(100)
    expectExpiresIn(d, 100)
    expect((d.signal.reason as DOMException).name).toBe('TimeoutError')
  })

  it('never aborts once cleared', () => {
    const d = new Deadline(100)
    vi.advanceTimersByTime(50)
    d.clear()
    vi.advanceTimersByTime(1000)
    expect(d.signal.aborted).toBe(false)
    expect(d.expired).toBe(false)
  })

  it('aborts with the parent, with its reason, and is then not expired', () => {
    const parent = new AbortController()
    const d = new Deadline(100, parent.signal)
    const reason = new Error('session closed')
    parent.abort(reason)
    expect(d.signal.aborted).toBe(true)
    expect(d.signal.reason).toBe(reason)
    expect(d.expired).toBe(false)
  })

  it('starts aborted under an aborted parent', () => {
    const parent = new AbortController()
    parent.abort(new Error('gone'))
    expect(new Deadline(100, parent.signal).signal.aborted).toBe(true)
  })

  it('lets go of the parent when cleared', () => {
    const parent = new AbortController()
    const d = new Deadline(100, parent.signal)
    d.clear()
    parent.abort(new Error('later'))
    expect(d.signal.aborted).toBe(false)
  })

  it('counts from the last restart', () => {
    const d = new Deadline(100)
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(60)
      d.restart()
    }
    expect(d.signal.aborted).toBe(false)
    expectExpiresIn(d, 100)
  })

  it('does not count time while paused, and counts again from restart', () => {
    const d = new Deadline(100)
    vi.advanceTimersByTime(50)
    d.pause()
    // the timer fires while paused: nothing happens
    vi.advanceTimersByTime(500)
    expect(d.signal.aborted).toBe(false)
    d.restart()
    expectExpiresIn(d, 100)
  })

  it('stays aborted: restart after the time ran out does nothing', () => {
    const d = new Deadline(10)
    vi.advanceTimersByTime(10)
    d.restart()
    expect(d.signal.aborted).toBe(true)
  })
})
