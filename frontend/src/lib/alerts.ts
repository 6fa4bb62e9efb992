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
