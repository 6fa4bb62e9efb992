import { beforeEach, describe, expect, it, vi } from 'vitest'
import AdminPage from '@/pages/AdminPage.vue'
import { flush, json, mockFetch, problem, tokens, user } from './helpers'
import { mountWithApp } from './mount'

const staff = { ...user, id: 'u-staff', username: 'admin', is_staff: true }

beforeEach(() => {
  localStorage.clear()
  localStorage.setItem('siaran.session', JSON.stringify({ accessToken: 'a', refreshToken: 'r', expiresAt: Date.now() + 900_000, user: staff }))
})

const page = <T>(items: T[]) => json({ items, page: 1, per_page: 20, total: items.length })

describe('admin pages', () => {
  it('searches users and deactivates one after confirming', async () => {
    vi.stubGlobal('confirm', vi.fn(() => true))
    const eko = { ...tokens(1).user, id: 'u-eko', username: 'eko' }
    const { calls } = mockFetch({
      'GET /api/admin/users': () => page([staff, eko]),
      'POST /api/admin/users/u-eko/deactivate': () => json({ ...eko, is_active: false }),
    })
    const { wrapper } = await mountWithApp(AdminPage, { path: '/admin' })
    await flush()
    await wrapper.find('[data-testid=search-input]').setValue(' ek ')
    await wrapper.find('form[role=search]').trigger('submit')
    await flush()
    expect(calls.at(-1)!.url).toBe('/api/admin/users?q=ek&page=1&per_page=20')

    const rows = wrapper.findAll('tbody tr')
    // Staff cannot deactivate themselves from here.
    expect(rows[0]!.find('button').exists()).toBe(false)
    await rows[1]!.find('button').trigger('click')
    await flush()
    expect(calls.at(-1)!.method).toBe('POST')
    expect(wrapper.findAll('tbody tr')[1]!.find('button').text()).toBe('Reactivate')
  })

  it('filters donations by status and shows refusals as sentences', async () => {
    const { calls } = mockFetch({
      'GET /api/admin/donations': (call) => (call.url.includes('status=completed') ? page([]) : problem(503, 'service_unavailable', 'The service is temporarily unavailable. Please try again shortly.')),
    })
    const { wrapper } = await mountWithApp(AdminPage, { path: '/admin/donations', props: { tab: 'donations' } })
    await flush()
    expect(wrapper.find('[role=alert]').text()).toBe('The service is temporarily unavailable. Please try again shortly.')
    await wrapper.find('[data-testid=search-filter]').setValue('completed')
    await flush()
    expect(calls.at(-1)!.url).toContain('status=completed')
    expect(wrapper.find('[role=alert]').exists()).toBe(false)
    expect(wrapper.text()).toContain('No donations match.')
  })

  it('ends a live stream', async () => {
    vi.stubGlobal('confirm', vi.fn(() => true))
    const live = { id: 's1', title: 'Main malam', streamer: { id: 'u-andi', username: 'andi' }, is_live: true, started_at: '2026-01-01T00:00:00Z', ended_at: null, created_at: '2026-01-01T00:00:00Z' }
    mockFetch({
      'GET /api/admin/streams': () => page([live]),
      'POST /api/admin/streams/s1/end': () => json({ ...live, is_live: false, ended_at: '2026-01-01T01:00:00Z' }),
    })
    const { wrapper } = await mountWithApp(AdminPage, { path: '/admin/streams', props: { tab: 'streams' } })
    await flush()
    await wrapper.find('button.danger').trigger('click')
    await flush()
    expect(wrapper.find('tbody').text()).toContain('Ended')
    expect(wrapper.find('button.danger').exists()).toBe(false)
  })
})
