// Donation alerts play one after another, each for a while, whatever rate they arrive at.

import { ref, type Ref } from 'vue'
import type { DonationAlert } from '@/api/types'

export interface AlertQueue {
  /** The alert on screen, if any. */
  current: Ref<DonationAlert | null>
  /** How many are waiting behind it. */
  waiting: Ref<number>
  push(alert: DonationAlert): void
  clear(): void
}

export function createAlertQueue(durationMs = 6000, gapMs = 600): AlertQueue {
  const current = ref<DonationAlert | null>(null)
  const waiting = ref(0)
  const queue: DonationAlert[] = []
  const seen = new Set<string>()
  let timer: ReturnType<typeof setTimeout> | null = null
  /** True from the moment an alert shows until the gap after the last one has passed. */
  let busy = false

  function next(): void {
    const alert = queue.shift()
    waiting.value = queue.length
    if (!alert) {
      busy = false
      current.value = null
      return
    }
    busy = true
    current.value = alert
    timer = setTimeout(() => {
      current.value = null
      timer = setTimeout(next, gapMs)
    }, durationMs)
  }

  return {
    current,
    waiting,
    push(alert) {
      // A replay after a reconnect must not show the same donation twice.
      if (seen.has(alert.donation_id)) return
      seen.add(alert.donation_id)
      queue.push(alert)
      waiting.value = queue.length
      if (!busy) next()
    },
    clear() {
      if (timer) clearTimeout(timer)
      timer = null
      busy = false
      queue.length = 0
      waiting.value = 0
      current.value = null
    },
  }
}

/**
 * Holds things that happened at a wall-clock moment until the picture shows that moment: a
 * donation alert over the player appears when the playhead's program date-time (the stream's
 * `EXT-X-PROGRAM-DATE-TIME`, on the server's clock like the event's `ts`) reaches the moment
 * the donation happened, so it coincides with the streamer's reaction and with the OBS overlay's
 * alert in the video, rather than seconds before them.
 */
export interface PictureGate {
  /** Runs `fn` once the picture reaches `at` (ms since the epoch), at once if it has. */
  hold(at: number, fn: () => void): void
  /** Releases what the picture has reached; call on every playhead move (and on a timer). */
  tick(): void
  clear(): void
}

/**
 * `clock` gives the playhead's wall-clock time, or `null` when nothing plays (then nothing is
 * held). Nothing is held longer than `maxHoldMs`, whatever the player does.
 */
export function createPictureGate(clock: () => number | null, maxHoldMs = 15_000, now: () => number = Date.now): PictureGate {
  let pending: { at: number; deadline: number; fn: () => void }[] = []
  return {
    hold(at, fn) {
      const playing = clock()
      if (playing === null || !Number.isFinite(at) || playing >= at) {
        fn()
        return
      }
      pending.push({ at, deadline: now() + maxHoldMs, fn })
    },
    tick() {
      if (pending.length === 0) return
      const playing = clock()
      const t = now()
      const due = pending.filter((p) => playing === null || playing >= p.at || t >= p.deadline)
      if (due.length === 0) return
      pending = pending.filter((p) => !due.includes(p))
      for (const p of due.sort((a, b) => a.at - b.at)) p.fn()
    },
    clear() {
      pending = []
    },
  }
}
