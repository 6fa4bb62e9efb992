// Errors as the API reports them (RFC 9457 problem+json), turned into sentences for people.

export interface FieldProblem {
  field: string
  code: string
  message: string
}

export interface ProblemDocument {
  type?: string
  title?: string
  status?: number
  detail?: string
  code?: string
  errors?: FieldProblem[]
  retry_after?: number
}

/** Sentences for failures that carry no problem document (proxies, lost connections). */
const BY_STATUS: Record<number, string> = {
  400: 'The request could not be understood.',
  401: 'Please log in to continue.',
  403: 'You are not allowed to do this.',
  404: 'We could not find what you were looking for.',
  408: 'The server took too long to answer. Please try again.',
  409: 'This conflicts with the current state. Refresh and try again.',
  413: 'That is too large to send.',
  422: 'Some fields need your attention.',
  429: 'Too many attempts. Please wait a moment and try again.',
  502: 'A service we depend on is not answering. Please try again shortly.',
  503: 'The service is temporarily unavailable. Please try again shortly.',
  504: 'The server took too long to answer. Please try again.',
}

/** A failed API call: `message` is always a sentence a person can read. */
export class ApiError extends Error {
  readonly status: number
  readonly code: string
  readonly fieldErrors: Record<string, string>
  readonly retryAfter: number | null

  constructor(status: number, code: string, message: string, fieldErrors: Record<string, string> = {}, retryAfter: number | null = null) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.fieldErrors = fieldErrors
    this.retryAfter = retryAfter
  }

  /** Builds the error from a parsed problem document (or whatever body came back). */
  static fromProblem(status: number, body: unknown, retryAfterHeader: string | null = null): ApiError {
    const problem: ProblemDocument = isObject(body) ? (body as ProblemDocument) : {}
    const fieldErrors: Record<string, string> = {}
    for (const e of Array.isArray(problem.errors) ? problem.errors : []) {
      if (e && typeof e.message === 'string') {
        const field = e.field || '_'
        // The first message per field is the one to show next to it.
        fieldErrors[field] ??= e.message
      }
    }
    const detail = typeof problem.detail === 'string' && problem.detail.trim() ? problem.detail : (BY_STATUS[status] ?? `Something went wrong (error ${status}).`)
    const code = typeof problem.code === 'string' ? problem.code : `http_${status}`
    const retry = typeof problem.retry_after === 'number' ? problem.retry_after : retryAfterHeader ? Number.parseInt(retryAfterHeader, 10) : NaN
    return new ApiError(status, code, withRetryHint(detail, status, retry), fieldErrors, Number.isFinite(retry) ? retry : null)
  }

  static network(): ApiError {
    return new ApiError(0, 'network_error', 'Cannot reach the server. Check your connection and try again.')
  }
}

function withRetryHint(detail: string, status: number, retry: number): string {
  if (status !== 429 || !Number.isFinite(retry) || /\btry again in\b/i.test(detail)) return detail
  return `${detail} Try again in ${retry} second${retry === 1 ? '' : 's'}.`
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null
}

/** The sentence to show for anything thrown (API errors, bugs, lost connections). */
export function errorMessage(e: unknown): string {
  if (e instanceof ApiError) return e.message
  if (e instanceof Error && e.message) return e.message
  return 'Something went wrong. Please try again.'
}
