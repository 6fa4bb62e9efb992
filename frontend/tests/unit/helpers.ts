// Test doubles for the browser APIs the app talks through: fetch and WebSocket.
import { vi } from 'vitest'

export interface Call {
  method: string
  url: string
  body: unknown
  headers: Record<string, string>
}

type Handler = (call: Call) => Response | Promise<Response>

export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } })
}

export function problem(status: number, code: string, detail: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ type: `urn:siaran:problem:${code}`, title: 'Error', status, detail, code, ...extra }), {
    status,
    headers: { 'content-type': 'application/problem+json', ...headers },
  })
}

/** Replaces fetch with a router of `"METHOD /path"` → handler; unknown calls fail the test. */
export function mockFetch(routes: Record<string, Handler>) {
  const calls: Call[] = []
  const fn = vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const url = String(input)
    const method = (init.method ?? 'GET').toUpperCase()
    const headers = (init.headers ?? {}) as Record<string, string>
    const call: Call = { method, url, body: init.body ? JSON.parse(String(init.body)) : undefined, headers }
    calls.push(call)
    const path = url.split('?')[0]
    const handler = routes[`${method} ${path}`]
    if (!handler) throw new Error(`unexpected request ${method} ${url}`)
    return handler(call)
  })
  vi.stubGlobal('fetch', fn)
  return { calls, fn }
}

/** A WebSocket the test drives: `FakeSocket.last.serverSend(...)`, `.serverClose()`. */
export class FakeSocket {
  static instances: FakeSocket[] = []
  static get last(): FakeSocket {
    const s = FakeSocket.instances.at(-1)
    if (!s) throw new Error('no socket opened')
    return s
  }
  static reset() {
    FakeSocket.instances = []
  }

  readyState = 0
  sent: unknown[] = []
  onopen: (() => void) | null = null
  onmessage: ((e: { data: string }) => void) | null = null
  onclose: (() => void) | null = null
  onerror: (() => void) | null = null

  constructor(public url: string) {
    FakeSocket.instances.push(this)
  }

  send(data: string) {
    this.sent.push(JSON.parse(data))
  }

  close() {
    this.readyState = 3
  }

  serverOpen() {
    this.readyState = 1
    this.onopen?.()
  }

  serverSend(message: unknown) {
    this.onmessage?.({ data: JSON.stringify(message) })
  }

  serverClose() {
    this.readyState = 3
    this.onclose?.()
  }
}

export const user = {
  id: 'u-1',
  username: 'rina',
  email: 'rina@example.com',
  first_name: '',
  last_name: '',
  is_active: true,
  is_staff: false,
  is_superuser: false,
  is_streamer: false,
  last_login: null,
  date_joined: '2026-01-01T00:00:00Z',
}

export function tokens(n: number, expiresIn = 900) {
  return { access_token: `access-${n}`, refresh_token: `refresh-${n}`, token_type: 'Bearer', expires_in: expiresIn, user }
}

export async function flush(times = 5) {
  for (let i = 0; i < times; i++) await new Promise((r) => setTimeout(r, 0))
}
