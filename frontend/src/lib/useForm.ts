// What every form does with the server's answer: busy while sending, the problem's sentence in a
// banner and its field errors next to their fields.

import { ref } from 'vue'
import { ApiError, errorMessage } from '@/api/problem'

export function useForm() {
  const busy = ref(false)
  const error = ref<string | null>(null)
  const fieldErrors = ref<Record<string, string>>({})

  /** Runs `action`; on failure shows why and resolves to undefined. */
  async function submit<T>(action: () => Promise<T>): Promise<T | undefined> {
    busy.value = true
    error.value = null
    fieldErrors.value = {}
    try {
      return await action()
    } catch (e) {
      if (e instanceof ApiError) fieldErrors.value = e.fieldErrors
      error.value = errorMessage(e)
      return undefined
    } finally {
      busy.value = false
    }
  }

  return { busy, error, fieldErrors, submit }
}
