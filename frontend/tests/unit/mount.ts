// Mounting a page or component with the app's real router and a fresh pinia.
import { mount, type ComponentMountingOptions } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { createMemoryHistory, createRouter } from 'vue-router'
import type { Component } from 'vue'
import { routes } from '@/router'
import { useAuthStore } from '@/stores/auth'

export async function mountWithApp<C extends Component>(component: C, options: ComponentMountingOptions<C> & { path?: string } = {}) {
  const pinia = createPinia()
  setActivePinia(pinia)
  useAuthStore().start(() => {})
  const router = createRouter({ history: createMemoryHistory(), routes })
  await router.push(options.path ?? '/')
  await router.isReady()
  const wrapper = mount(component, {
    ...options,
    global: { plugins: [pinia, router], ...(options.global ?? {}) },
  } as ComponentMountingOptions<C>)
  return { wrapper, router }
}
