import { describe, expect, it } from 'vitest'
import {
  BusyError, ERROR_CODES, errorFromWire, errorToWire, InternalError, isErrorCode, MalformedMessageError, SwarmError,
  TooLongError, UnknownSessionError
} from './errors.js'
import { MAX_ERROR_MESSAGE_LENGTH } from './constants.js'

describe('errors', () => {
  it('sets name, code and cause', () => {
    const cause = new Error('low level')
    const err = new BusyError('cache full', { cause })
    expect(err).toBeInstanceOf(SwarmError)
    expect(err).toBeInstanceOf(Error)
    expect(err.name).toBe('BusyError')
    expect(err.code).toBe('busy')
    expect(err.cause).toBe(cause)
    expect(err.message).toBe('cache full')
  })

  it('maps every code to its class and back', () => {
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length)
    for (const code of ERROR_CODES) {
      const err = errorFromWire({ code, message: `m-${code}` })
      expect(err.code).toBe(code)
      expect(err.message).toBe(`m-${code}`)
      expect(err.name).toMatch(/Error$/)
      expect(errorToWire(err)).toEqual({ code, message: `m-${code}` })
      expect(isErrorCode(code)).toBe(true)
    }
    expect(errorFromWire({ code: 'too-long', message: 'x' })).toBeInstanceOf(TooLongError)
    expect(errorFromWire({ code: 'unknown-session', message: 'x' })).toBeInstanceOf(UnknownSessionError)
  })

  it('turns foreign errors into internal and unknown codes into InternalError', () => {
    expect(errorToWire(new TypeError('boom'))).toEqual({ code: 'internal', message: 'boom' })
    expect(errorToWire('a string')).toEqual({ code: 'internal', message: 'a string' })
    const err = errorFromWire({ code: 'from-the-future', message: 'hi' })
    expect(err).toBeInstanceOf(InternalError)
    expect(err.message).toContain('from-the-future')
    expect(isErrorCode('from-the-future')).toBe(false)
    expect(isErrorCode(3)).toBe(false)
  })

  it('truncates long messages', () => {
    const wire = errorToWire(new MalformedMessageError('x'.repeat(MAX_ERROR_MESSAGE_LENGTH + 10)))
    expect(wire.message.length).toBe(MAX_ERROR_MESSAGE_LENGTH)
  })
})
