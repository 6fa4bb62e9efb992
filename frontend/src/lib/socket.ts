// A WebSocket that stays connected: it reconnects by itself with backoff and, on reconnecting,
// asks for what it missed with `last_event_id`, so every event is seen exactly once and in order.

import type { SocketEnvelope } from '@/api/types'

export type SocketState = 'connecting' | 'open' | 'reconnecting' | 'closed'

export interface ResumableSocketOptions {
  /** The socket's path, e.g. `/ws/stream/<id>/`. */
  path: string
  onEvent: (event: SocketEnvelope) => void
  onState?: (state: SocketState) => void
  /** Called on every (re)connection; its token, if any, is sent as the first message. */
  token?: () => Promise<string | null>
  /** Delays between attempts grow from `minDelay` to `maxDelay` (ms). */
  minDelay?: number
  maxDelay?: number
  /** Resume with `stream_id` too (the overlay socket follows one stream after another). */
  resumeWithStream?: boolean
  /** For tests. */
  WebSocketImpl?: typeof WebSocket
}

/**
 * Server messages that are not stream events. Their `id` repeats the last event id rather than
 * numbering a new event, so they are never dropped as duplicates.
 */
const CONTROL_TYPES = new Set(['ready', 'overlay.ready', 'authenticated', 'pong', 'error'])

export function socketUrl(path: string, query: Record<string, string> = {}, origin: string = window.location.origin): string {
  const url = new URL(path, origin)
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v)
  return url.toString()
}

export class ResumableSocket {
  private ws: WebSocket | null = null
  private attempts = 0
  private timer: ReturnType<typeof setTimeout> | null = null
  private stopped = false
  /** The highest event id delivered; events at or below it are duplicates from a replay. */
  lastEventId = 0
  /** The stream those ids number (ids start again on another stream). */
  lastStreamId: string | null = null
  state: SocketState = 'closed'

  constructor(private readonly options: ResumableSocketOptions) {}

  start(): void {
    this.stopped = false
    this.open()
  }

  stop(): void {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    const ws = this.ws
    this.ws = null
    if (ws && ws.readyState <= 1) ws.close(1000)
    this.setState('closed')
  }

  /** Sends a JSON message; false when not connected. */
  send(message: unknown): boolean {
    if (!this.ws || this.ws.readyState !== 1) return false
    this.ws.send(JSON.stringify(message))
    return true
  }

  /** Sends the current token again (after the user logs in or the token is refreshed). */
  async reauthenticate(): Promise<void> {
    const token = this.options.token ? await this.options.token() : null
    if (token) this.send({ type: 'auth', token })
  }

  private setState(state: SocketState): void {
    if (this.state === state) return
    this.state = state
    this.options.onState?.(state)
  }

  private open(): void {
    const Impl = this.options.WebSocketImpl ?? WebSocket
    const query: Record<string, string> = {}
    if (this.lastEventId > 0) {
      query.last_event_id = String(this.lastEventId)
      if (this.options.resumeWithStream && this.lastStreamId) query.stream_id = this.lastStreamId
    }
    this.setState(this.attempts === 0 ? 'connecting' : 'reconnecting')
    const ws = new Impl(socketUrl(this.options.path, query))
    this.ws = ws
    ws.onopen = () => {
      if (ws !== this.ws) return
      this.attempts = 0
      this.setState('open')
      void this.reauthenticate()
    }
    ws.onmessage = (msg: MessageEvent) => {
      if (ws !== this.ws) return
      let event: SocketEnvelope
      try {
        event = JSON.parse(String(msg.data)) as SocketEnvelope
      } catch {
        return
      }
      if (!event || typeof event.type !== 'string') return
      if (typeof event.id === 'number' && !CONTROL_TYPES.has(event.type)) {
        const stream = typeof event.stream_id === 'string' ? event.stream_id : null
        if (stream !== null && stream !== this.lastStreamId) {
          this.lastStreamId = stream
        } else if (event.id <= this.lastEventId) {
          return
        }
        this.lastEventId = event.id
      }
      this.options.onEvent(event)
    }
    ws.onclose = () => {
      if (ws !== this.ws) return
      this.ws = null
      if (this.stopped) return
      this.retryLater()
    }
    ws.onerror = () => {
      // `close` follows every error and does the reconnecting.
    }
  }

  private retryLater(): void {
    const min = this.options.minDelay ?? 500
    const max = this.options.maxDelay ?? 10_000
    const base = Math.min(max, min * 2 ** this.attempts)
    const delay = base / 2 + Math.random() * (base / 2)
    this.attempts += 1
    this.setState('reconnecting')
    this.timer = setTimeout(() => {
      this.timer = null
      if (!this.stopped) this.open()
    }, delay)
  }
}
