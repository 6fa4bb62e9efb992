import { beforeEach, describe, expect, it, vi } from 'vitest'
import WatchPage from '@/pages/WatchPage.vue'
import { FakeSocket, flush, json, mockFetch } from './helpers'
import { mountWithApp } from './mount'

import type { Stream } from '@/api/types'

const stream: Stream = {
  id: 's1',
  title: 'Main bareng',
  description: '',
  streamer: { id: 'u-andi', username: 'andi' },
  is_live: false,
  started_at: null,
  ended_at: null,
  created_at: '2026-01-01T00:00:00Z',
  hls_url: '/hls/s1/index.m3u8',
  thumbnail_url: null,
  viewer_count: 0,
}

beforeEach(() => {
  localStorage.clear()
  FakeSocket.reset()
  vi.stubGlobal('WebSocket', FakeSocket)
})

async function mountWatch(initial = stream) {
  let current = initial
  mockFetch({
    'GET /api/streams/s1': () => json(current),
    'GET /api/streams/s1/comments': () => json({ items: [], next_cursor: null }),
  })
  const { wrapper } = await mountWithApp(WatchPage, { path: '/streams/s1', props: { id: 's1' } })
  await flush()
  return { wrapper, setStream: (s: Stream) => (current = s) }
}

describe('watch page', () => {
  it('goes live, counts viewers and ends as the socket says', async () => {
    const { wrapper, setStream } = await mountWatch()
    expect(wrapper.find('[data-testid=phase-badge]').text()).toBe('Offline')
    expect(FakeSocket.last.url).toMatch(/\/ws\/stream\/s1\/$/)
    FakeSocket.last.serverOpen()

    setStream({ ...stream, is_live: true, started_at: '2026-01-01T01:00:00Z' })
    FakeSocket.last.serverSend({ type: 'stream.live', id: 1, data: { stream_id: 's1', started_at: '2026-01-01T01:00:00Z' } })
    FakeSocket.last.serverSend({ type: 'viewers.count', id: 2, data: { count: 3 } })
    await flush()
    expect(wrapper.find('[data-testid=live-badge]').exists()).toBe(true)
    expect(wrapper.find('[data-testid=viewer-count]').text()).toBe('3 viewers')
    expect(wrapper.find('[data-testid=video]').exists()).toBe(true)

    FakeSocket.last.serverSend({ type: 'stream.ended', id: 3, data: { stream_id: 's1', ended_at: new Date().toISOString() } })
    await flush()
    expect(wrapper.find('[data-testid=phase-badge]').text()).toBe('Ended')
    expect(wrapper.find('[data-testid=slate]').text()).toContain('This stream has ended')
    wrapper.unmount()
  })

  it('shows a donation alert over the player for everyone', async () => {
    const { wrapper } = await mountWatch({ ...stream, is_live: true })
    FakeSocket.last.serverOpen()
    FakeSocket.last.serverSend({ type: 'donation.received', id: 4, data: { donation_id: 'd1', amount: 25_000, currency: 'IDR', message: 'Semangat!', donor_name: 'Rina Putri', payment_method: 'midtrans' } })
    await flush()
    const alert = wrapper.find('[data-testid=donation-alert]')
    expect(alert.text()).toContain('Rp 25.000')
    expect(alert.text()).toContain('Rina Putri')
    expect(alert.text()).toContain('Semangat!')
    wrapper.unmount()
  })

  it('keeps stream health behind the stats toggle', async () => {
    const { wrapper } = await mountWatch({ ...stream, is_live: true })
    FakeSocket.last.serverOpen()
    FakeSocket.last.serverSend({ type: 'stream.health', id: 5, data: { video_bitrate_kbps: 2500, audio_bitrate_kbps: 128, fps: 30, keyframe_interval_s: 2, width: 1280, height: 720, video_codec: 'h264', audio_codec: 'aac', dropped_bytes: 0 } })
    await flush()
    expect(wrapper.find('[data-testid=health]').exists()).toBe(false)
    await wrapper.find('button[aria-controls=stats]').trigger('click')
    expect(wrapper.find('[data-testid=health]').text()).toContain('1280×720')
    wrapper.unmount()
  })

  it('says so when the stream does not exist', async () => {
    mockFetch({ 'GET /api/streams/nope': () => new Response(JSON.stringify({ status: 404, code: 'not_found', detail: 'Stream not found.' }), { status: 404 }) })
    const { wrapper } = await mountWithApp(WatchPage, { path: '/streams/nope', props: { id: 'nope' } })
    await flush()
    expect(wrapper.text()).toContain('Stream not found')
    wrapper.unmount()
  })
})
