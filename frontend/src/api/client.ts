// The one place that talks HTTP to Siaran: JSON in and out, problem+json turned into ApiError,
// the access token attached, and one silent retry after refreshing an expired token.

import { ApiError } from './problem'

/** What the client needs from the session (the auth store provides it; tests fake it). */
export interface SessionHooks {
  /** A valid access token, refreshed first if it is about to expire; null when logged out. */
  accessToken(): Promise<string | null>
  /** The server refused the token: try to refresh; true when a retry may succeed. */
  recover(code: string): Promise<boolean>
  /** The session is gone for good (refresh refused): forget it and ask the user to log in. */
  lost(reason: string): void
}

let session: SessionHooks | null = null

export function useSessionHooks(hooks: SessionHooks | null): void {
  session = hooks
}

export type Query = Record<string, string | number | boolean | null | undefined>

export interface RequestOptions {
  body?: unknown
  query?: Query
  /** `optional` (default) sends a token when logged in; `none` never does. */
  auth?: 'optional' | 'required' | 'none'
  /** Return the raw Response (CSV downloads). */
  raw?: boolean
  signal?: AbortSignal
}

/** Token codes a refresh can cure. */
const RECOVERABLE = new Set(['token_expired', 'invalid_token'])
/** Codes after which the session cannot continue. */
const FATAL = new Set(['account_disabled', 'invalid_refresh_token', 'refresh_token_reused'])

export function buildUrl(path: string, query?: Query): string {
  if (!query) return path
  const params = new URLSearchParams()
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== '') params.set(k, String(v))
  }
  const qs = params.toString()
  return qs ? `${path}${path.includes('?') ? '&' : '?'}${qs}` : path
}

export async function request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const mode = options.auth ?? 'optional'
  let token = mode === 'none' || !session ? null : await session.accessToken()
  if (mode === 'required' && !token) {
    session?.lost('not_authenticated')
    throw new ApiError(401, 'not_authenticated', 'Please log in to continue.')
  }
  let response = await send(method, path, options, token)
  if (response.status === 401 && token && session) {
    const problem = await readBody(response.clone())
    const code = typeof (problem as { code?: unknown })?.code === 'string' ? (problem as { code: string }).code : ''
    if (RECOVERABLE.has(code) && (await session.recover(code))) {
      token = await session.accessToken()
      response = await send(method, path, options, token)
    } else if (FATAL.has(code) || RECOVERABLE.has(code)) {
      session.lost(code)
      // Public data is still there for an anonymous visitor.
      if (mode === 'optional') {
        token = null
        response = await send(method, path, options, null)
      }
    }
  }
  if (!response.ok) {
    const err = ApiError.fromProblem(response.status, await readBody(response), response.headers.get('retry-after'))
    if (err.status === 401 && token && session && (FATAL.has(err.code) || RECOVERABLE.has(err.code))) session.lost(err.code)
    throw err
  }
  if (options.raw) return response as unknown as T
  if (response.status === 204) return undefined as T
  return (await readBody(response)) as T
}

async function send(method: string, path: string, options: RequestOptions, token: string | null): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json, application/problem+json' }
  if (options.body !== undefined) headers['Content-Type'] = 'application/json'
  if (token) headers.Authorization = `Bearer ${token}`
  try {
    return await fetch(buildUrl(path, options.query), {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: options.signal,
    })
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e
    throw ApiError.network()
  }
}

async function readBody(response: Response): Promise<unknown> {
  const text = await response.text()
  if (!text) return null
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

export const api = {
  get: <T>(path: string, query?: Query, options: RequestOptions = {}) => request<T>('GET', path, { ...options, query }),
  post: <T>(path: string, body: unknown = {}, options: RequestOptions = {}) => request<T>('POST', path, { ...options, body }),
  patch: <T>(path: string, body: unknown, options: RequestOptions = {}) => request<T>('PATCH', path, { ...options, body }),
  put: <T>(path: string, body: unknown, options: RequestOptions = {}) => request<T>('PUT', path, { ...options, body }),
  delete: <T>(path: string, options: RequestOptions = {}) => request<T>('DELETE', path, options),
}
