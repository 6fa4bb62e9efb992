// A stream's live events for a component's lifetime: one resumable socket, the user's token
// sent when there is one (so they may chat over it), closed when the component goes away.

import { onBeforeUnmount, onMounted, ref, watch } from 'vue'
import type { SocketEnvelope } from '@/api/types'
import { useAuthStore } from '@/stores/auth'
import { ResumableSocket, type SocketState } from './socket'

/** `path` returns the socket's path, or '' while there is nothing to follow. */
export function useStreamEvents(path: () => string, onEvent: (event: SocketEnvelope) => void, options: { authenticate?: boolean; resumeWithStream?: boolean } = {}) {
  const auth = useAuthStore()
  const connection = ref<SocketState>('closed')
  let socket: ResumableSocket | null = null

  function open() {
    socket?.stop()
    socket = null
    const where = path()
    // No stream to follow (yet): no socket.
    if (!where) return
    socket = new ResumableSocket({
      path: where,
      resumeWithStream: options.resumeWithStream,
      onEvent: (event) => {
        // The token expired while connected: refresh it and identify again, silently.
        const code = event.type === 'error' ? (event.data as { code?: string } | null)?.code : undefined
        if (code === 'token_expired' && options.authenticate !== false) {
          void auth.refresh().then(async (ok) => {
            if (ok) await socket?.reauthenticate()
          })
          return
        }
        onEvent(event)
      },
      onState: (s) => (connection.value = s),
      token: options.authenticate === false ? undefined : () => auth.accessToken(),
    })
    socket.start()
  }

  onMounted(open)
  onBeforeUnmount(() => {
    socket?.stop()
    socket = null
  })
  // A different stream on the same component (navigating between streams) needs a new socket.
  watch(path, open)
  if (options.authenticate !== false) {
    watch(
      () => auth.session?.accessToken,
      (token) => {
        if (token) void socket?.reauthenticate()
      },
    )
  }

  return {
    connection,
    send: (message: unknown) => socket?.send(message) ?? false,
    /** Closes the socket for good (nothing more will come: a revoked overlay token). */
    close: () => socket?.stop(),
  }
}
