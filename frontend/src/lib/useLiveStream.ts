// What a page knows about a live stream from its socket: live or ended, viewers, health, and the
// media pipeline's complaints. Shared by the watch page and the streamer's dashboard.

import { ref, type Ref } from 'vue'
import type { SocketEnvelope, Stream, StreamHealth } from '@/api/types'

export function useLiveStream(stream: Ref<Stream | null>) {
  const viewers = ref(0)
  const health = ref<StreamHealth | null>(null)
  const streamError = ref<string | null>(null)

  /** Takes the counters from freshly loaded stream JSON. */
  function reset(s: Stream) {
    viewers.value = s.viewer_count ?? 0
    health.value = s.health ?? null
  }

  /** Applies a stream event; returns its type when it was one of these, null otherwise. */
  function apply(event: SocketEnvelope): string | null {
    const s = stream.value
    switch (event.type) {
      case 'stream.live': {
        const data = event.data as { started_at?: string }
        streamError.value = null
        if (s) stream.value = { ...s, is_live: true, ended_at: null, started_at: data.started_at ?? s.started_at }
        return event.type
      }
      case 'stream.ended': {
        const data = event.data as { ended_at?: string }
        health.value = null
        if (s) stream.value = { ...s, is_live: false, ended_at: data.ended_at ?? new Date().toISOString() }
        return event.type
      }
      case 'stream.health':
        health.value = event.data as StreamHealth
        return event.type
      case 'stream.error':
        streamError.value = (event.data as { message?: string }).message ?? 'The stream ran into a problem.'
        return event.type
      case 'viewers.count':
        viewers.value = (event.data as { count: number }).count
        return event.type
      case 'ready': {
        const count = (event.data as { viewer_count?: number | null }).viewer_count
        if (typeof count === 'number') viewers.value = count
        return event.type
      }
      default:
        return null
    }
  }

  return { viewers, health, streamError, reset, apply }
}
