import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createAlertQueue } from '@/lib/alerts'

const alert = (id: string, amount = 10_000) => ({ donation_id: id, amount, currency: 'IDR', message: 'hi', donor_name: 'Rina', payment_method: 'midtrans' as const })

beforeEach(() => vi.useFakeTimers())
afterEach(() => vi.useRealTimers())

describe('alert queue', () => {
  it('plays alerts one after another, each for its duration', () => {
    const q = createAlertQueue(1000, 100)
    q.push(alert('a'))
    q.push(alert('b'))
    expect(q.current.value?.donation_id).toBe('a')
    expect(q.waiting.value).toBe(1)
    vi.advanceTimersByTime(1000)
    expect(q.current.value).toBeNull()
    vi.advanceTimersByTime(100)
    expect(q.current.value?.donation_id).toBe('b')
    vi.advanceTimersByTime(1100)
    expect(q.current.value).toBeNull()
    // An alert after a quiet spell shows at once.
    q.push(alert('c'))
    expect(q.current.value?.donation_id).toBe('c')
  })

  it('shows a donation once even if the socket replays it', () => {
    const q = createAlertQueue(1000, 100)
    q.push(alert('a'))
    q.push(alert('a'))
    expect(q.waiting.value).toBe(0)
    vi.advanceTimersByTime(1100)
    expect(q.current.value).toBeNull()
  })
})

describe('picture gate', () => {
  it('holds an event until the playhead reaches its moment, in order', async () => {
    const { createPictureGate } = await import('@/lib/alerts')
    let playhead: number | null = 1_000
    let wall = 50_000
    const shown: string[] = []
    const gate = createPictureGate(() => playhead, 15_000, () => wall)
    gate.hold(2_500, () => shown.push('late'))
    gate.hold(2_000, () => shown.push('early'))
    gate.hold(900, () => shown.push('past'))
    expect(shown).toEqual(['past'])
    playhead = 1_999
    gate.tick()
    expect(shown).toEqual(['past'])
    playhead = 3_000
    gate.tick()
    expect(shown).toEqual(['past', 'early', 'late'])
    // Nothing playing: nothing is held; a stuck player holds nothing past the deadline.
    playhead = null
    gate.hold(10_000, () => shown.push('no player'))
    expect(shown.at(-1)).toBe('no player')
    playhead = 0
    gate.hold(10_000, () => shown.push('stuck'))
    wall += 14_999
    gate.tick()
    expect(shown.at(-1)).toBe('no player')
    wall += 1
    gate.tick()
    expect(shown.at(-1)).toBe('stuck')
  })
})
