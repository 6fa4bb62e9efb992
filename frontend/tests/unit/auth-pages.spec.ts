import { beforeEach, describe, expect, it, vi } from 'vitest'
import LoginPage from '@/pages/LoginPage.vue'
import RegisterPage from '@/pages/RegisterPage.vue'
import { createAppRouter, safeNext } from '@/router'
import { useAuthStore } from '@/stores/auth'
import { createPinia, setActivePinia } from 'pinia'
import { flush, json, mockFetch, problem, tokens } from './helpers'
import { mountWithApp } from './mount'

beforeEach(() => localStorage.clear())

describe('register page', () => {
  it('shows each server field error next to its field', async () => {
    mockFetch({
      'POST /api/auth/register': () =>
        problem(422, 'validation_failed', 'The request has invalid fields.', {
          errors: [
            { field: 'username', code: 'taken', message: 'This username is already taken.' },
            { field: 'password', code: 'too_short', message: 'Use at least 8 characters.' },
          ],
        }),
    })
    const { wrapper } = await mountWithApp(RegisterPage, { path: '/register' })
    await wrapper.find('input[name=username]').setValue('budi')
    await wrapper.find('input[name=email]').setValue('budi@example.com')
    await wrapper.find('input[name=password]').setValue('short')
    await wrapper.find('form').trigger('submit')
    await flush()

    const username = wrapper.find('input[name=username]')
    expect(username.attributes('aria-invalid')).toBe('true')
    const describedBy = username.attributes('aria-describedby')!
    expect(wrapper.find(`#${describedBy}`).text()).toBe('This username is already taken.')
    expect(wrapper.text()).toContain('Use at least 8 characters.')
    expect(wrapper.find('input[name=email]').attributes('aria-invalid')).toBeUndefined()
    expect(wrapper.text()).toContain('Please fix the fields marked below.')
  })

  it('logs the new account in and goes where the visitor was headed', async () => {
    mockFetch({
      'POST /api/auth/register': () => json({ id: 'u-1', username: 'rina' }, 201),
      'POST /api/auth/login': () => json(tokens(1)),
    })
    const { wrapper, router } = await mountWithApp(RegisterPage, { path: '/register?next=/donations' })
    await wrapper.find('input[name=username]').setValue('rina')
    await wrapper.find('input[name=email]').setValue('rina@example.com')
    await wrapper.find('input[name=password]').setValue('correct-horse')
    await wrapper.find('form').trigger('submit')
    await vi.waitFor(() => expect(router.currentRoute.value.fullPath).toBe('/donations'))
    expect(useAuthStore().isLoggedIn).toBe(true)
  })
})

describe('login page', () => {
  it('shows the server sentence for wrong credentials', async () => {
    mockFetch({ 'POST /api/auth/login': () => problem(401, 'invalid_credentials', 'The username/email or password is incorrect.') })
    const { wrapper } = await mountWithApp(LoginPage, { path: '/login' })
    await wrapper.find('input[name=login]').setValue('rina')
    await wrapper.find('input[name=password]').setValue('nope')
    await wrapper.find('form').trigger('submit')
    await flush()
    expect(wrapper.find('[role=alert]').text()).toBe('The username/email or password is incorrect.')
  })

  it('tells a visitor whose session ended why they are here', async () => {
    const { wrapper } = await mountWithApp(LoginPage, { path: '/login?expired=1&next=/dashboard' })
    expect(wrapper.text()).toContain('Your session has ended')
  })
})

describe('router', () => {
  it('sends visitors to log in and back for pages that need an account', async () => {
    setActivePinia(createPinia())
    const router = createAppRouter()
    await router.push('/dashboard')
    expect(router.currentRoute.value.name).toBe('login')
    expect(router.currentRoute.value.query.next).toBe('/dashboard')
  })

  it('keeps non-staff out of the admin pages', async () => {
    setActivePinia(createPinia())
    localStorage.setItem('siaran.session', JSON.stringify({ accessToken: 'a', refreshToken: 'r', expiresAt: Date.now() + 900_000, user: { ...tokens(1).user, is_staff: false } }))
    const router = createAppRouter()
    await router.push('/admin')
    expect(router.currentRoute.value.name).toBe('home')
  })

  it('only follows `next` within this site', () => {
    expect(safeNext('/streams/1')).toBe('/streams/1')
    expect(safeNext('//evil.example')).toBeNull()
    expect(safeNext('https://evil.example')).toBeNull()
    expect(safeNext(undefined)).toBeNull()
  })
})
