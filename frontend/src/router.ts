import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'
import { useAuthStore } from './stores/auth'

declare module 'vue-router' {
  interface RouteMeta {
    requiresAuth?: boolean
    requiresStaff?: boolean
    /** Only for visitors who are not logged in (login, register). */
    guestOnly?: boolean
    /** No header or footer (the OBS overlay). */
    bare?: boolean
    title?: string
  }
}

export const routes: RouteRecordRaw[] = [
  { path: '/', name: 'home', component: () => import('./pages/HomePage.vue'), meta: { title: 'Live now' } },
  { path: '/login', name: 'login', component: () => import('./pages/LoginPage.vue'), meta: { guestOnly: true, title: 'Log in' } },
  { path: '/register', name: 'register', component: () => import('./pages/RegisterPage.vue'), meta: { guestOnly: true, title: 'Create an account' } },
  { path: '/streams/:id', name: 'watch', component: () => import('./pages/WatchPage.vue'), props: true, meta: { title: 'Watch' } },
  { path: '/dashboard', name: 'dashboard', component: () => import('./pages/DashboardPage.vue'), meta: { requiresAuth: true, title: 'Dashboard' } },
  { path: '/donations', name: 'my-donations', component: () => import('./pages/MyDonationsPage.vue'), meta: { requiresAuth: true, title: 'My donations' } },
  { path: '/overlay/:token', name: 'overlay', component: () => import('./pages/OverlayPage.vue'), props: true, meta: { bare: true, title: 'Alerts overlay' } },
  {
    path: '/admin/:tab(users|streams|donations)?',
    name: 'admin',
    component: () => import('./pages/AdminPage.vue'),
    props: true,
    meta: { requiresAuth: true, requiresStaff: true, title: 'Admin' },
  },
  { path: '/:pathMatch(.*)*', name: 'not-found', component: () => import('./pages/NotFoundPage.vue'), meta: { title: 'Not found' } },
]

export function createAppRouter() {
  const router = createRouter({
    history: createWebHistory(),
    routes,
    scrollBehavior: (_to, _from, saved) => saved ?? { top: 0 },
  })
  router.beforeEach((to) => {
    const auth = useAuthStore()
    if (to.meta.requiresAuth && !auth.isLoggedIn) return { name: 'login', query: { next: to.fullPath } }
    if (to.meta.requiresStaff && !auth.isStaff) return { name: 'home' }
    if (to.meta.guestOnly && auth.isLoggedIn) return safeNext(to.query.next) ?? { name: 'home' }
    return true
  })
  router.afterEach((to) => {
    document.title = to.meta.title ? `${to.meta.title} · Siaran` : 'Siaran'
  })
  return router
}

/** A `next` parameter that stays on this site (never `//evil.example` or `https://…`). */
export function safeNext(next: unknown): string | null {
  return typeof next === 'string' && next.startsWith('/') && !next.startsWith('//') ? next : null
}
