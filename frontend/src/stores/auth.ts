// The session: who is logged in, their tokens, and keeping the access token fresh.
//
// Tokens live in localStorage so a reload keeps the session. Refresh tokens are single-use and
// the server ends the whole session when one is presented twice, so two tabs must never
// refresh with the same token: refreshing happens under a Web Lock shared by every tab, and a
// tab that gets the lock after another tab refreshed adopts the tokens that tab stored instead
// of spending the used one again.

import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api, useSessionHooks } from '@/api/client'
import { ApiError } from '@/api/problem'
import type { TokenResponse, User } from '@/api/types'

export const STORAGE_KEY = 'siaran.session'
/** Refresh this long before the access token expires. */
export const REFRESH_MARGIN_MS = 60_000

export interface StoredSession {
  accessToken: string
  refreshToken: string
  /** Epoch milliseconds when the access token expires. */
  expiresAt: number
  user: User
}

export function readStored(): StoredSession | null {
  try {
    const raw = localStorage.getItem(STORAGE_KEY)
    if (!raw) return null
    const s = JSON.parse(raw) as StoredSession
    return s && typeof s.refreshToken === 'string' && s.user ? s : null
  } catch {
    return null
  }
}

function writeStored(s: StoredSession | null): void {
  if (s) localStorage.setItem(STORAGE_KEY, JSON.stringify(s))
  else localStorage.removeItem(STORAGE_KEY)
}

/** Runs `fn` while holding the cross-tab refresh lock (or directly where Web Locks are missing). */
async function withRefreshLock<T>(fn: () => Promise<T>): Promise<T> {
  const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined
  return locks ? locks.request('siaran.refresh', fn) : fn()
}

export const useAuthStore = defineStore('auth', () => {
  const session = ref<StoredSession | null>(readStored())
  /** Why the last session ended without the user asking (shown on the login page). */
  const lostReason = ref<string | null>(null)
  const user = computed(() => session.value?.user ?? null)
  const isLoggedIn = computed(() => session.value !== null)
  const isStaff = computed(() => session.value?.user.is_staff ?? false)

  let timer: ReturnType<typeof setTimeout> | null = null
  let inFlight: Promise<boolean> | null = null
  let onLost: ((reason: string) => void) | null = null

  function adopt(tokens: TokenResponse): void {
    set({
      accessToken: tokens.access_token,
      refreshToken: tokens.refresh_token,
      expiresAt: Date.now() + tokens.expires_in * 1000,
      user: tokens.user,
    })
  }

  function set(next: StoredSession | null): void {
    session.value = next
    writeStored(next)
    schedule()
  }

  /** Arms the silent refresh shortly before the access token expires. */
  function schedule(): void {
    if (timer) clearTimeout(timer)
    timer = null
    if (!session.value) return
    const delay = Math.max(0, session.value.expiresAt - REFRESH_MARGIN_MS - Date.now())
    timer = setTimeout(() => void refresh(), Math.min(delay, 2 ** 31 - 1))
  }

  /** Exchanges the refresh token for a new pair; false when the session is over. */
  function refresh(): Promise<boolean> {
    inFlight ??= withRefreshLock(async () => {
      const before = session.value?.refreshToken
      const stored = readStored()
      // Another tab refreshed while this one waited for the lock: use its tokens.
      if (stored && stored.refreshToken !== before && stored.expiresAt - Date.now() > REFRESH_MARGIN_MS) {
        session.value = stored
        schedule()
        return true
      }
      const token = stored?.refreshToken ?? before
      if (!token) return false
      try {
        adopt(await api.post<TokenResponse>('/api/auth/refresh', { refresh_token: token }, { auth: 'none' }))
        return true
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) {
          lose(e.code)
          return false
        }
        // Offline or the server is restarting: keep the session and try again soon.
        if (timer) clearTimeout(timer)
        timer = setTimeout(() => void refresh(), 10_000)
        return Boolean(session.value && session.value.expiresAt > Date.now())
      }
    }).finally(() => {
      inFlight = null
    })
    return inFlight
  }

  async function accessToken(): Promise<string | null> {
    if (!session.value) return null
    if (session.value.expiresAt - Date.now() < 5_000) await refresh()
    return session.value?.accessToken ?? null
  }

  function lose(reason: string): void {
    if (!session.value) return
    lostReason.value = reason
    set(null)
    onLost?.(reason)
  }

  async function login(loginName: string, password: string): Promise<User> {
    const tokens = await api.post<TokenResponse>('/api/auth/login', { login: loginName, password }, { auth: 'none' })
    lostReason.value = null
    adopt(tokens)
    return tokens.user
  }

  async function register(fields: { username: string; email: string; password: string; first_name?: string; last_name?: string }): Promise<User> {
    await api.post<User>('/api/auth/register', fields, { auth: 'none' })
    return login(fields.username, fields.password)
  }

  async function logout(): Promise<void> {
    const token = session.value?.refreshToken
    set(null)
    lostReason.value = null
    if (token) {
      // The local session is gone either way; a failed call only leaves a token that expires.
      await api.post('/api/auth/logout', { refresh_token: token }, { auth: 'none' }).catch(() => undefined)
    }
  }

  /** Reloads the account (after becoming a streamer, for instance). */
  async function reloadUser(): Promise<void> {
    if (!session.value) return
    const fresh = await api.get<User>('/api/users/me', undefined, { auth: 'required' })
    if (session.value) set({ ...session.value, user: fresh })
  }

  function setUser(u: User): void {
    if (session.value) set({ ...session.value, user: u })
  }

  /** Follows logins, refreshes and logouts made in other tabs. */
  function onStorage(e: StorageEvent): void {
    if (e.key !== STORAGE_KEY) return
    session.value = readStored()
    schedule()
  }

  function start(lost: (reason: string) => void): void {
    onLost = lost
    useSessionHooks({
      accessToken,
      recover: () => refresh(),
      lost: lose,
    })
    if (typeof window !== 'undefined') window.addEventListener('storage', onStorage)
    schedule()
  }

  function stop(): void {
    if (timer) clearTimeout(timer)
    timer = null
    useSessionHooks(null)
    if (typeof window !== 'undefined') window.removeEventListener('storage', onStorage)
  }

  return { session, user, isLoggedIn, isStaff, lostReason, login, register, logout, refresh, accessToken, reloadUser, setUser, start, stop }
})
