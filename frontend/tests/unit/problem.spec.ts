import { describe, expect, it } from 'vitest'
import { ApiError, errorMessage } from '@/api/problem'

describe('ApiError.fromProblem', () => {
  it('uses the problem detail as the sentence and keeps the code', () => {
    const e = ApiError.fromProblem(409, { status: 409, code: 'stream_not_live', detail: 'The stream is not live.' })
    expect(e.message).toBe('The stream is not live.')
    expect(e.code).toBe('stream_not_live')
    expect(e.status).toBe(409)
  })

  it('maps each field error to its field, first message wins', () => {
    const e = ApiError.fromProblem(422, {
      code: 'validation_failed',
      detail: 'The request has invalid fields.',
      errors: [
        { field: 'email', code: 'taken', message: 'An account with this email already exists.' },
        { field: 'username', code: 'too_short', message: 'At least 3 characters.' },
        { field: 'username', code: 'invalid', message: 'Second message.' },
      ],
    })
    expect(e.fieldErrors).toEqual({ email: 'An account with this email already exists.', username: 'At least 3 characters.' })
  })

  it('says when to retry a rate-limited request unless the detail already does', () => {
    const plain = ApiError.fromProblem(429, { code: 'rate_limited', detail: 'You are commenting too fast.', retry_after: 7 })
    expect(plain.message).toBe('You are commenting too fast. Try again in 7 seconds.')
    expect(plain.retryAfter).toBe(7)
    const fromHeader = ApiError.fromProblem(429, { code: 'rate_limited', detail: 'Slow down.' }, '1')
    expect(fromHeader.message).toBe('Slow down. Try again in 1 second.')
    const already = ApiError.fromProblem(429, { detail: 'Too many failed logins. Try again in 15 minute(s).', retry_after: 900 })
    expect(already.message).toBe('Too many failed logins. Try again in 15 minute(s).')
  })

  it('falls back to a sentence for the status when there is no problem document', () => {
    expect(ApiError.fromProblem(502, '<html>Bad gateway</html>').message).toMatch(/not answering/)
    expect(ApiError.fromProblem(418, null).message).toBe('Something went wrong (error 418).')
  })

  it('describes a lost connection without technical words', () => {
    expect(errorMessage(ApiError.network())).toBe('Cannot reach the server. Check your connection and try again.')
    expect(errorMessage('weird')).toBe('Something went wrong. Please try again.')
  })
})
