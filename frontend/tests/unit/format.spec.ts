import { describe, expect, it } from 'vitest'
import { formatDuration, formatIdr, parseIdr, plural, timeAgo } from '@/lib/format'

describe('formatting', () => {
  it('writes rupiah the Indonesian way, whole', () => {
    expect(formatIdr(25_000)).toBe('Rp 25.000')
    expect(formatIdr(1_500_000)).toBe('Rp 1.500.000')
  })

  it('reads amounts however people type them', () => {
    expect(parseIdr('25.000')).toBe(25_000)
    expect(parseIdr('Rp 50,000')).toBe(50_000)
    expect(parseIdr('abc')).toBeNull()
  })

  it('says how long ago and how long', () => {
    const now = Date.parse('2026-01-01T12:00:00Z')
    expect(timeAgo('2026-01-01T11:59:30Z', now)).toBe('just now')
    expect(timeAgo('2026-01-01T11:45:00Z', now)).toBe('15 min ago')
    expect(timeAgo('2026-01-01T09:00:00Z', now)).toBe('3 h ago')
    expect(formatDuration(3725)).toBe('1:02:05')
    expect(formatDuration(65)).toBe('1:05')
    expect(plural(1, 'viewer')).toBe('1 viewer')
    expect(plural(3, 'viewer')).toBe('3 viewers')
  })
})
