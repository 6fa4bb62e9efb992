import { createApp } from 'vue'
import { createPinia } from 'pinia'
import App from './App.vue'
import { createAppRouter } from './router'
import { useAuthStore } from './stores/auth'
import './styles.css'

const app = createApp(App)
const pinia = createPinia()
app.use(pinia)
const router = createAppRouter()
app.use(router)

// A session that ends by itself (refresh refused, account disabled) sends the user to log in
// when the page needs it, and back here afterwards.
useAuthStore().start(() => {
  const current = router.currentRoute.value
  if (current.meta.requiresAuth) {
    void router.replace({ name: 'login', query: { next: current.fullPath, expired: '1' } })
  }
})

app.mount('#app')
