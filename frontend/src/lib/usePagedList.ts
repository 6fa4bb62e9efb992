// A paginated list a page shows: load, change page, restart from page one on a new search.

import { ref, type Ref } from 'vue'
import { errorMessage } from '@/api/problem'
import type { Page } from '@/api/types'

export interface PagedList<P extends Page<unknown>> {
  items: Ref<P['items']>
  total: Ref<number>
  page: Ref<number>
  loaded: Ref<boolean>
  error: Ref<string | null>
  /** The last answer, for extras such as totals. */
  last: Ref<P | null>
  load(): Promise<void>
  /** Back to page one (after the filters changed). */
  search(): Promise<void>
  goTo(page: number): Promise<void>
  /** The id of the row an action is running on. */
  busyId: Ref<string | null>
  /** Runs an action on one row and puts the row it returns in its place. */
  replace(id: string, action: () => Promise<P['items'][number]>): Promise<void>
}

export function usePagedList<P extends Page<unknown>>(fetch: (page: number) => Promise<P>): PagedList<P> {
  const items = ref([]) as Ref<P['items']>
  const total = ref(0)
  const page = ref(1)
  const loaded = ref(false)
  const error = ref<string | null>(null)
  const last = ref<P | null>(null) as Ref<P | null>
  const busyId = ref<string | null>(null)

  async function load() {
    try {
      const result = await fetch(page.value)
      items.value = result.items
      total.value = result.total
      last.value = result
      error.value = null
    } catch (e) {
      error.value = errorMessage(e)
    } finally {
      loaded.value = true
    }
  }

  return {
    items,
    total,
    page,
    loaded,
    error,
    last,
    load,
    search: () => {
      page.value = 1
      return load()
    },
    goTo: (p: number) => {
      page.value = p
      return load()
    },
    busyId,
    async replace(id, action) {
      busyId.value = id
      error.value = null
      try {
        const updated = await action()
        items.value = items.value.map((x) => ((x as { id: string }).id === id ? updated : x))
      } catch (e) {
        error.value = errorMessage(e)
      } finally {
        busyId.value = null
      }
    },
  }
}
