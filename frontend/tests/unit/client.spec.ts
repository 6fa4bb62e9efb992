import { afterEach, describe, expect, it, vi } from 'vitest'
import { api, buildUrl, useSessionHooks } from '@/api/client'
import { ApiError } from '@/api/problem'
import { json, mockFetch, problem } from './helpers'

afterEach(() => useSessionHooks(null))

function session(token: string | null) {
  let current = token
  const hooks = {
    accessToken: vi.fn(async () => current),
    recover: vi.fn(async () => {
      current = 'fresh'
      return true
    }),
    lost: vi.fn(),
  }
  useSessionHooks(hooks)
  return hooks
}

describe('api client', () => {
  it('sends JSON with the bearer token and parses the answer', async () => {
    session('tok')
    const { calls } = mockFetch({ 'POST /api/streams': () => json({ id: 's1' }, 201) })
    const result = await api.post<{ id: string }>('/api/streams', { title: 'Hi' })
    expect(result).toEqual({ id: 's1' })
    expect(calls[0]!.headers.Authorization).toBe('Bearer tok')
    expect(calls[0]!.headers['Content-Type']).toBe('application/json')
    expect(calls[0]!.body).toEqual({ title: 'Hi' })
  })

  it('turns a problem response into an ApiError carrying its sentence', async () => {
    session(null)
    mockFetch({ 'GET /api/streams/x': () => problem(404, 'not_found', 'Stream not found.') })
    const error = await api.get('/api/streams/x').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ApiError)
    expect((error as ApiError).message).toBe('Stream not found.')
  })

  it('refreshes an expired token once and retries the request', async () => {
    const hooks = session('old')
    const { calls } = mockFetch({
      'GET /api/users/me': (call) => (call.headers.Authorization === 'Bearer fresh' ? json({ username: 'rina' }) : problem(401, 'token_expired', 'Your session has expired.')),
    })
    const me = await api.get<{ username: string }>('/api/users/me', undefined, { auth: 'required' })
    expect(me.username).toBe('rina')
    expect(hooks.recover).toHaveBeenCalledWith('token_expired')
    expect(calls).toHaveLength(2)
    expect(hooks.lost).not.toHaveBeenCalled()
  })

  it('reports a lost session when the refresh fails', async () => {
    const hooks = session('old')
    hooks.recover.mockResolvedValue(false)
    mockFetch({ 'GET /api/users/me': () => problem(401, 'token_expired', 'Your session has expired.') })
    await expect(api.get('/api/users/me', undefined, { auth: 'required' })).rejects.toThrow('Your session has expired.')
    expect(hooks.lost).toHaveBeenCalledWith('token_expired')
  })

  it('still shows public data anonymously after the session is lost', async () => {
    const hooks = session('old')
    hooks.recover.mockResolvedValue(false)
    const { calls } = mockFetch({
      'GET /api/streams': (call) => (call.headers.Authorization ? problem(401, 'invalid_token', 'The access token is not valid.') : json({ items: [], page: 1, per_page: 20, total: 0 })),
    })
    const page = await api.get<{ total: number }>('/api/streams')
    expect(page.total).toBe(0)
    expect(hooks.lost).toHaveBeenCalled()
    expect(calls.at(-1)!.headers.Authorization).toBeUndefined()
  })

  it('asks to log in before calling an endpoint that needs it', async () => {
    const hooks = session(null)
    const { fn } = mockFetch({})
    await expect(api.get('/api/donations/sent', undefined, { auth: 'required' })).rejects.toThrow('Please log in to continue.')
    expect(fn).not.toHaveBeenCalled()
    expect(hooks.lost).toHaveBeenCalled()
  })

  it('explains a network failure in words', async () => {
    session(null)
    vi.stubGlobal('fetch', vi.fn(async () => Promise.reject(new TypeError('Failed to fetch'))))
    await expect(api.get('/api/streams')).rejects.toThrow('Cannot reach the server')
  })

  it('leaves empty query parameters out', () => {
    expect(buildUrl('/api/admin/users', { q: '', page: 2, is_active: false, status: undefined })).toBe('/api/admin/users?page=2&is_active=false')
    expect(buildUrl('/x', {})).toBe('/x')
  })
})
