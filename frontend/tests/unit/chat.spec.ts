import { beforeEach, describe, expect, it } from 'vitest'
import ChatPanel from '@/components/ChatPanel.vue'
import { flush, json, mockFetch, problem, tokens } from './helpers'
import { mountWithApp } from './mount'

const comment = (id: string, content: string, username = 'dewi') => ({ id, stream_id: 's1', author: { id: `u-${username}`, username }, content, created_at: '2026-01-01T12:00:00Z' })

function logIn() {
  localStorage.setItem('siaran.session', JSON.stringify({ accessToken: 'a', refreshToken: 'r', expiresAt: Date.now() + 900_000, user: tokens(1).user }))
}

beforeEach(() => localStorage.clear())

async function mountChat(props: Partial<{ isLive: boolean; canModerate: boolean }> = {}) {
  const { wrapper } = await mountWithApp(ChatPanel, {
    path: '/streams/s1',
    props: { streamId: 's1', isLive: true, canModerate: false, connection: 'open', ...props },
  })
  await flush()
  return wrapper
}

const messages = (w: Awaited<ReturnType<typeof mountChat>>) => w.findAll('[data-testid=chat-message]').map((m) => m.find('.content').text())

describe('chat panel', () => {
  it('shows history oldest first, then live messages once each', async () => {
    mockFetch({ 'GET /api/streams/s1/comments': () => json({ items: [comment('c2', 'second'), comment('c1', 'first')], next_cursor: null }) })
    const wrapper = await mountChat()
    expect(messages(wrapper)).toEqual(['first', 'second'])

    const live = { type: 'comment.created', id: 7, data: comment('c3', 'third') }
    ;(wrapper.vm as unknown as { handle(e: unknown): void }).handle(live)
    ;(wrapper.vm as unknown as { handle(e: unknown): void }).handle(live)
    ;(wrapper.vm as unknown as { handle(e: unknown): void }).handle({ type: 'comment.deleted', id: 8, data: { id: 'c1' } })
    await flush()
    expect(messages(wrapper)).toEqual(['second', 'third'])
  })

  it('invites visitors to log in instead of showing the box', async () => {
    mockFetch({ 'GET /api/streams/s1/comments': () => json({ items: [], next_cursor: null }) })
    const wrapper = await mountChat()
    expect(wrapper.find('textarea').exists()).toBe(false)
    expect(wrapper.text()).toContain('Log in to chat.')
  })

  it('posts a message with Enter and shows it', async () => {
    logIn()
    const { calls } = mockFetch({
      'GET /api/streams/s1/comments': () => json({ items: [], next_cursor: null }),
      'POST /api/streams/s1/comments': (call) => json(comment('c9', (call.body as { content: string }).content, 'rina'), 201),
    })
    const wrapper = await mountChat()
    const box = wrapper.find('textarea')
    await box.setValue('  halo semua  ')
    await box.trigger('keydown', { key: 'Enter' })
    await flush()
    expect(calls.at(-1)!.body).toEqual({ content: 'halo semua' })
    expect(messages(wrapper)).toEqual(['halo semua'])
    expect((box.element as HTMLTextAreaElement).value).toBe('')
  })

  it('says kindly when the user is sending too fast, and keeps the draft', async () => {
    logIn()
    mockFetch({
      'GET /api/streams/s1/comments': () => json({ items: [], next_cursor: null }),
      'POST /api/streams/s1/comments': () => problem(429, 'comment_rate_limited', 'You are sending messages too quickly.', { retry_after: 4 }, { 'retry-after': '4' }),
    })
    const wrapper = await mountChat()
    await wrapper.find('textarea').setValue('spam')
    await wrapper.find('form').trigger('submit')
    await flush()
    expect(wrapper.find('[data-testid=chat-error]').text()).toBe('You are sending messages too quickly. Try again in 4 seconds.')
    expect((wrapper.find('textarea').element as HTMLTextAreaElement).value).toBe('spam')
  })

  it('closes the box while the stream is not live', async () => {
    logIn()
    mockFetch({ 'GET /api/streams/s1/comments': () => json({ items: [], next_cursor: null }) })
    const wrapper = await mountChat({ isLive: false })
    expect(wrapper.find('textarea').attributes('disabled')).toBeDefined()
  })

  it('loads earlier messages on request', async () => {
    mockFetch({
      'GET /api/streams/s1/comments': (call) =>
        call.url.includes('cursor=next') ? json({ items: [comment('c0', 'zeroth')], next_cursor: null }) : json({ items: [comment('c1', 'first')], next_cursor: 'next' }),
    })
    const wrapper = await mountChat()
    await wrapper.find('button.earlier').trigger('click')
    await flush()
    expect(messages(wrapper)).toEqual(['zeroth', 'first'])
    expect(wrapper.find('button.earlier').exists()).toBe(false)
  })
})
