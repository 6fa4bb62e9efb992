// Midtrans Snap.js: loaded on demand from the URL the server names (the fake Midtrans serves its
// own in development), then `snap.pay(token, callbacks)`. Its callbacks are no proof of payment:
// the page waits for the server to say the donation is completed.

export interface SnapCallbacks {
  onSuccess?: (result: unknown) => void
  onPending?: (result: unknown) => void
  onError?: (result: unknown) => void
  onClose?: () => void
}

interface Snap {
  pay(token: string, callbacks: SnapCallbacks): void
}

declare global {
  interface Window {
    snap?: Snap
  }
}

const loading = new Map<string, Promise<Snap>>()

export function loadSnap(src: string, clientKey: string): Promise<Snap> {
  let promise = loading.get(src)
  if (!promise) {
    promise = new Promise<Snap>((resolve, reject) => {
      if (window.snap) return resolve(window.snap)
      const script = document.createElement('script')
      script.src = src
      script.async = true
      script.setAttribute('data-client-key', clientKey)
      script.onload = () => (window.snap ? resolve(window.snap) : reject(new Error('The payment window did not load. Please try again.')))
      script.onerror = () => {
        loading.delete(src)
        script.remove()
        reject(new Error('The payment window could not be loaded. Check your connection and try again.'))
      }
      document.head.appendChild(script)
    })
    loading.set(src, promise)
  }
  return promise
}

/** Opens Snap and resolves with how the buyer left it. */
export async function paySnap(src: string, clientKey: string, token: string): Promise<'success' | 'pending' | 'error' | 'closed'> {
  const snap = await loadSnap(src, clientKey)
  return new Promise((resolve) => {
    snap.pay(token, {
      onSuccess: () => resolve('success'),
      onPending: () => resolve('pending'),
      onError: () => resolve('error'),
      onClose: () => resolve('closed'),
    })
  })
}
