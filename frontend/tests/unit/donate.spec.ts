import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import DonatePanel from '@/components/DonatePanel.vue'
import { flush, json, mockFetch, problem, tokens } from './helpers'
import { mountWithApp } from './mount'

beforeEach(() => {
  localStorage.clear()
  localStorage.setItem('siaran.session', JSON.stringify({ accessToken: 'a', refreshToken: 'r', expiresAt: Date.now() + 900_000, user: tokens(1).user }))
})
afterEach(() => {
  delete window.snap
})

const donation = { id: 'd1', stream_id: 's1', amount: 50_000, message: 'semangat', payment_method: 'midtrans', status: 'pending', created_at: '2026-01-01T00:00:00Z' }

async function mountPanel() {
  const { wrapper } = await mountWithApp(DonatePanel, { path: '/streams/s1', props: { streamId: 's1', isLive: true, isOwnStream: false } })
  return wrapper
}

describe('donate panel', () => {
  it('pays through Snap and waits for the server before thanking', async () => {
    const pay = vi.fn((_token: string, callbacks: { onSuccess?: () => void }) => callbacks.onSuccess?.())
    window.snap = { pay }
    const { calls } = mockFetch({
      'POST /api/streams/s1/donations': () =>
        json({ donation, payment: { provider: 'midtrans', snap_token: 'snap-tok', redirect_url: 'http://x', client_key: 'ck', snap_js_url: '/snap.js' } }, 201),
      'GET /api/donations/d1': () => json({ donation, payment: null }),
    })
    const wrapper = await mountPanel()
    const presets = wrapper.findAll('.presets button')
    await presets[2]!.trigger('click')
    await wrapper.find('[data-testid=donate-message]').setValue('semangat')
    await wrapper.find('form').trigger('submit')
    await flush(10)

    expect(calls[0]!.body).toEqual({ amount: 50_000, message: 'semangat', payment_method: 'midtrans', anonymous: false })
    expect(pay).toHaveBeenCalledWith('snap-tok', expect.any(Object))
    // Snap's "success" is no proof: still processing until the server says so.
    expect(wrapper.find('[data-testid=donate-processing]').exists()).toBe(true)

    ;(wrapper.vm as unknown as { handle(e: unknown): void }).handle({ type: 'donation.received', id: 3, data: { donation_id: 'd1', amount: 50_000 } })
    await flush()
    expect(wrapper.find('[data-testid=donate-done]').text()).toContain('Rp 50.000 went through')
    wrapper.unmount()
  })

  it('says so when the payment ends without money changing hands', async () => {
    window.snap = { pay: (_t: string, cb: { onClose?: () => void }) => cb.onClose?.() }
    mockFetch({
      'POST /api/streams/s1/donations': () =>
        json({ donation, payment: { provider: 'midtrans', snap_token: 't', redirect_url: 'http://x', client_key: 'ck', snap_js_url: '/snap.js' } }, 201),
      'GET /api/donations/d1': () => json({ donation: { ...donation, status: 'failed' }, payment: null }),
    })
    const wrapper = await mountPanel()
    await wrapper.find('form').trigger('submit')
    await flush(10)
    expect(wrapper.find('[data-testid=donate-done]').text()).toContain('Failed')
    wrapper.unmount()
  })

  it('shows bank transfer instructions with copy buttons', async () => {
    mockFetch({
      'POST /api/streams/s1/donations': () =>
        json(
          {
            donation: { ...donation, payment_method: 'bank_transfer' },
            payment: { provider: 'bank_transfer', bank_name: 'BCA', account_number: '1234567890', account_holder: 'Andi Wijaya', amount: 25_000, reference_code: 'SRN-7QK2', expires_at: '2026-01-03T00:00:00Z' },
          },
          201,
        ),
    })
    const wrapper = await mountPanel()
    await wrapper.find('[data-testid=method-bank]').setValue(true)
    await wrapper.find('form').trigger('submit')
    await flush()
    const box = wrapper.find('[data-testid=bank-instructions]')
    expect(box.text()).toContain('BCA')
    expect(box.text()).toContain('1234567890')
    expect(box.text()).toContain('Rp 25.000')
    expect(wrapper.find('[data-testid=bank-reference]').text()).toBe('SRN-7QK2')
    expect(box.findAll('button').filter((b) => b.text() === 'Copy')).toHaveLength(3)
  })

  it('puts the server field errors next to their fields', async () => {
    mockFetch({
      'POST /api/streams/s1/donations': () =>
        problem(422, 'validation_failed', 'The message contains a word the streamer has blocked.', {
          errors: [{ field: 'message', code: 'blocked_word', message: 'The message contains a word the streamer has blocked.' }],
        }),
    })
    const wrapper = await mountPanel()
    await wrapper.find('[data-testid=donate-message]').setValue('kata kasar')
    await wrapper.find('form').trigger('submit')
    await flush()
    expect(wrapper.find('[data-testid=donate-message]').attributes('aria-invalid')).toBe('true')
    expect(wrapper.findAll('.field-error').map((e) => e.text())).toContain('The message contains a word the streamer has blocked.')
  })

  it('refuses amounts below the minimum before asking the server', async () => {
    const { fn } = mockFetch({})
    const wrapper = await mountPanel()
    await wrapper.find('[data-testid=donate-amount]').setValue('5000')
    await wrapper.find('form').trigger('submit')
    await flush()
    expect(fn).not.toHaveBeenCalled()
    expect(wrapper.text()).toContain('The smallest donation is Rp 10.000.')
  })

  it('explains a payment gateway outage in words', async () => {
    mockFetch({ 'POST /api/streams/s1/donations': () => problem(502, 'payment_gateway_error', 'The payment service is not answering; nothing was charged.') })
    const wrapper = await mountPanel()
    await wrapper.find('form').trigger('submit')
    await flush()
    expect(wrapper.find('[data-testid=donate-error]').text()).toBe('The payment service is not answering; nothing was charged.')
  })
})
