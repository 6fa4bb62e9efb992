import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ResumableSocket, socketUrl } from '@/lib/socket'
import { FakeSocket, flush } from './helpers'

beforeEach(() => FakeSocket.reset())
afterEach(() => vi.useRealTimers())

function open(token: string | null = null) {
  const events: unknown[] = []
  const states: string[] = []
  const socket = new ResumableSocket({
    path: '/ws/stream/s1/',
    onEvent: (e) => events.push(e),
    onState: (s) => states.push(s),
    token: async () => token,
    minDelay: 100,
    maxDelay: 400,
    WebSocketImpl: FakeSocket as unknown as typeof WebSocket,
  })
  socket.start()
  return { socket, events, states }
}

describe('ResumableSocket', () => {
  it('builds ws:// and wss:// addresses from the page origin', () => {
    expect(socketUrl('/ws/stream/a/', { last_event_id: '4' }, 'http://localhost:8000')).toBe('ws://localhost:8000/ws/stream/a/?last_event_id=4')
    expect(socketUrl('/ws/overlay/t', {}, 'https://siaran.example')).toBe('wss://siaran.example/ws/overlay/t')
  })

  it('sends the token as its first message, never in the address', async () => {
    open('secret-token')
    FakeSocket.last.serverOpen()
    await flush()
    expect(FakeSocket.last.url).not.toContain('secret-token')
    expect(FakeSocket.last.sent[0]).toEqual({ type: 'auth', token: 'secret-token' })
  })

  it('reconnects by itself and resumes after the last event it saw', async () => {
    vi.useFakeTimers()
    const { events, states } = open()
    const first = FakeSocket.last
    first.serverOpen()
    first.serverSend({ type: 'comment.created', id: 1, data: {} })
    first.serverSend({ type: 'comment.created', id: 2, data: {} })
    first.serverClose()
    expect(states.at(-1)).toBe('reconnecting')

    await vi.advanceTimersByTimeAsync(150)

    const second = FakeSocket.last
    expect(second).not.toBe(first)
    expect(second.url).toContain('last_event_id=2')
    second.serverOpen()
    // The replay overlaps what was already seen: those are dropped.
    second.serverSend({ type: 'comment.created', id: 2, data: {} })
    second.serverSend({ type: 'comment.created', id: 3, data: {} })
    expect(events.map((e) => (e as { id: number }).id)).toEqual([1, 2, 3])
    expect(states.at(-1)).toBe('open')
  })

  it('backs off between failed attempts up to the limit', async () => {
    vi.useFakeTimers()
    vi.spyOn(Math, 'random').mockReturnValue(0.999)
    open()
    FakeSocket.last.serverClose()
    await vi.advanceTimersByTimeAsync(95)
    expect(FakeSocket.instances).toHaveLength(1)
    await vi.advanceTimersByTimeAsync(6)
    expect(FakeSocket.instances).toHaveLength(2)
    FakeSocket.last.serverClose()
    await vi.advanceTimersByTimeAsync(195)
    expect(FakeSocket.instances).toHaveLength(2)
    await vi.advanceTimersByTimeAsync(6)
    expect(FakeSocket.instances).toHaveLength(3)
  })

  it('ignores messages that are not JSON events and passes events without ids', () => {
    const { events } = open()
    FakeSocket.last.serverOpen()
    FakeSocket.last.onmessage?.({ data: 'not json' })
    FakeSocket.last.serverSend({ nothing: true })
    FakeSocket.last.serverSend({ type: 'error', data: { code: 'rate_limited' } })
    expect(events).toEqual([{ type: 'error', data: { code: 'rate_limited' } }])
  })

  it('passes control messages that repeat the last event id', () => {
    const { events } = open()
    FakeSocket.last.serverOpen()
    FakeSocket.last.serverSend({ type: 'comment.created', id: 5, data: {} })
    FakeSocket.last.serverSend({ type: 'pong', id: 5, data: {} })
    FakeSocket.last.serverSend({ type: 'error', id: 5, data: { code: 'comment_rate_limited' } })
    expect(events.map((e) => (e as { type: string }).type)).toEqual(['comment.created', 'pong', 'error'])
  })

  it('numbers events per stream, and resumes the overlay on the stream it followed', async () => {
    vi.useFakeTimers()
    const events: unknown[] = []
    const socket = new ResumableSocket({
      path: '/ws/overlay/sov_x',
      onEvent: (e) => events.push(e),
      resumeWithStream: true,
      minDelay: 100,
      WebSocketImpl: FakeSocket as unknown as typeof WebSocket,
    })
    socket.start()
    FakeSocket.last.serverOpen()
    FakeSocket.last.serverSend({ type: 'donation.received', id: 40, stream_id: 'old', data: {} })
    // The streamer's next stream numbers its events from 1 again.
    FakeSocket.last.serverSend({ type: 'donation.received', id: 1, stream_id: 'new', data: {} })
    FakeSocket.last.serverSend({ type: 'donation.received', id: 2, stream_id: 'new', data: {} })
    FakeSocket.last.serverClose()
    await vi.advanceTimersByTimeAsync(150)
    expect(events).toHaveLength(3)
    expect(FakeSocket.last.url).toContain('last_event_id=2')
    expect(FakeSocket.last.url).toContain('stream_id=new')
    socket.stop()
  })

  it('stays closed once stopped', async () => {
    vi.useFakeTimers()
    const { socket } = open()
    FakeSocket.last.serverOpen()
    socket.stop()
    FakeSocket.last.serverClose()
    await vi.advanceTimersByTimeAsync(5_000)
    expect(FakeSocket.instances).toHaveLength(1)
    expect(socket.send({ type: 'ping' })).toBe(false)
  })
})
