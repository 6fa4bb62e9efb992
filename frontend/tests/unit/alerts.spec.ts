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
