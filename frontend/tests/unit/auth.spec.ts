import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { STORAGE_KEY, useAuthStore } from '@/stores/auth'
import { json, mockFetch, problem, tokens } from './helpers'

beforeEach(() => {
  localStorage.clear()
  setActivePinia(createPinia())
})
afterEach(() => {
  useAuthStore().stop()
  vi.useRealTimers()
})

function stored() {
  return JSON.parse(localStorage.getItem(STORAGE_KEY) ?? 'null')
}

describe('auth store', () => {
  it('logs in and keeps the session across reloads', async () => {
    mockFetch({ 'POST /api/auth/login': () => json(tokens(1)) })
    const auth = useAuthStore()
    auth.start(() => {})
    await auth.login('rina', 'secret-password')
    expect(auth.isLoggedIn).toBe(true)
    expect(auth.user?.username).toBe('rina')
    expect(stored().refreshToken).toBe('refresh-1')

    setActivePinia(createPinia())
    expect(useAuthStore().user?.username).toBe('rina')
  })

  it('refreshes silently a minute before the access token expires', async () => {
    vi.useFakeTimers()
    const { calls } = mockFetch({
      'POST /api/auth/login': () => json(tokens(1, 900)),
      'POST /api/auth/refresh': () => json(tokens(2, 900)),
    })
    const auth = useAuthStore()
    auth.start(() => {})
    await auth.login('rina', 'pw')

    await vi.advanceTimersByTimeAsync(839_000)
    expect(calls.filter((c) => c.url === '/api/auth/refresh')).toHaveLength(0)
    await vi.advanceTimersByTimeAsync(2_000)
    const refreshes = calls.filter((c) => c.url === '/api/auth/refresh')
    expect(refreshes).toHaveLength(1)
    expect(refreshes[0]!.body).toEqual({ refresh_token: 'refresh-1' })
    expect(await auth.accessToken()).toBe('access-2')
    expect(stored().refreshToken).toBe('refresh-2')
  })

  it('never spends a refresh token another tab already rotated', async () => {
    const { calls } = mockFetch({ 'POST /api/auth/login': () => json(tokens(1)), 'POST /api/auth/refresh': () => json(tokens(9)) })
    const auth = useAuthStore()
    auth.start(() => {})
    await auth.login('rina', 'pw')
    // Another tab refreshed meanwhile and stored its new pair.
    localStorage.setItem(STORAGE_KEY, JSON.stringify({ ...stored(), accessToken: 'access-2', refreshToken: 'refresh-2', expiresAt: Date.now() + 900_000 }))

    expect(await auth.refresh()).toBe(true)

    expect(calls.filter((c) => c.url === '/api/auth/refresh')).toHaveLength(0)
    expect(await auth.accessToken()).toBe('access-2')
  })

  it('makes one refresh call for concurrent requests', async () => {
    const { calls } = mockFetch({ 'POST /api/auth/login': () => json(tokens(1)), 'POST /api/auth/refresh': () => json(tokens(2)) })
    const auth = useAuthStore()
    auth.start(() => {})
    await auth.login('rina', 'pw')
    await Promise.all([auth.refresh(), auth.refresh(), auth.refresh()])
    expect(calls.filter((c) => c.url === '/api/auth/refresh')).toHaveLength(1)
  })

  it('ends the session and says so when the refresh token is refused', async () => {
    mockFetch({
      'POST /api/auth/login': () => json(tokens(1)),
      'POST /api/auth/refresh': () => problem(401, 'refresh_token_reused', 'This refresh token was already used.'),
    })
    const lost = vi.fn()
    const auth = useAuthStore()
    auth.start(lost)
    await auth.login('rina', 'pw')

    expect(await auth.refresh()).toBe(false)

    expect(lost).toHaveBeenCalledWith('refresh_token_reused')
    expect(auth.isLoggedIn).toBe(false)
    expect(auth.lostReason).toBe('refresh_token_reused')
    expect(localStorage.getItem(STORAGE_KEY)).toBeNull()
  })

  it('keeps the session through a network blip during refresh', async () => {
    let fail = true
    mockFetch({
      'POST /api/auth/login': () => json(tokens(1)),
      'POST /api/auth/refresh': () => (fail ? Promise.reject(new TypeError('offline')) : json(tokens(2))),
    })
    const auth = useAuthStore()
    auth.start(() => {})
    await auth.login('rina', 'pw')
    expect(await auth.refresh()).toBe(true)
    expect(auth.isLoggedIn).toBe(true)
    fail = false
    expect(await auth.refresh()).toBe(true)
    expect(await auth.accessToken()).toBe('access-2')
  })

  it('logs out on the server and forgets the tokens', async () => {
    const { calls } = mockFetch({ 'POST /api/auth/login': () => json(tokens(1)), 'POST /api/auth/logout': () => new Response(null, { status: 204 }) })
    const auth = useAuthStore()
    auth.start(() => {})
    await auth.login('rina', 'pw')
    await auth.logout()
    expect(auth.isLoggedIn).toBe(false)
    expect(localStorage.getItem(STORAGE_KEY)).toBeNull()
    expect(calls.at(-1)!.body).toEqual({ refresh_token: 'refresh-1' })
  })

  it('follows a logout made in another tab', async () => {
    mockFetch({ 'POST /api/auth/login': () => json(tokens(1)) })
    const auth = useAuthStore()
    auth.start(() => {})
    await auth.login('rina', 'pw')
    localStorage.removeItem(STORAGE_KEY)
    window.dispatchEvent(new StorageEvent('storage', { key: STORAGE_KEY }))
    expect(auth.isLoggedIn).toBe(false)
  })
})
