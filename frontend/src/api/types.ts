// Shapes of what the API returns. Kept to the fields the pages use; the OpenAPI document at
// /api/openapi.json is the reference.

export interface User {
  id: string
  username: string
  email: string
  first_name: string
  last_name: string
  is_active: boolean
  is_staff: boolean
  is_superuser: boolean
  is_streamer: boolean
  last_login: string | null
  date_joined: string
}

export interface PublicUser {
  id: string
  username: string
}

export interface TokenResponse {
  access_token: string
  refresh_token: string
  token_type: string
  expires_in: number
  user: User
}

export interface Page<T> {
  items: T[]
  page: number
  per_page: number
  total: number
}

export interface CursorPage<T> {
  items: T[]
  next_cursor: string | null
}

export interface StreamHealth {
  video_bitrate_kbps: number | null
  audio_bitrate_kbps: number | null
  fps: number | null
  keyframe_interval_s: number | null
  width: number | null
  height: number | null
  video_codec: string | null
  audio_codec: string | null
  dropped_bytes: number
}

export interface Stream {
  id: string
  title: string
  description: string
  streamer: PublicUser
  is_live: boolean
  started_at: string | null
  ended_at: string | null
  created_at: string
  hls_url: string | null
  thumbnail_url: string | null
  viewer_count: number
  health?: StreamHealth | null
}

/** `GET /api/users/me/ingest`: where to publish; the key only masked. */
export interface IngestSettings {
  ingest_url: string
  /** `null` until a key is created. */
  masked_key: string | null
  key_created_at: string | null
}

/** `POST /api/users/me/stream-key`: the new key, shown this once. */
export interface StreamKeyCreated {
  ingest_url: string
  stream_key: string
  masked_key: string
  key_created_at: string
}

export interface Comment {
  id: string
  stream_id?: string
  author: PublicUser
  content: string
  created_at: string
}

export type DonationStatus = 'pending' | 'completed' | 'failed' | 'expired' | 'rejected' | 'refunded' | 'partially_refunded'
export type PaymentMethod = 'midtrans' | 'bank_transfer'

export interface Donation {
  id: string
  transaction_id?: string
  stream_id: string
  stream_title?: string
  streamer?: PublicUser
  donor?: (PublicUser & { display_name?: string }) | null
  /** The donor's display name, or "Anonymous". */
  donor_name?: string
  /** Whole rupiah. */
  amount: number
  message: string
  payment_method: PaymentMethod
  status: DonationStatus
  anonymous?: boolean
  /** Bank transfers: the code the donor writes in the transfer note. */
  reference_code?: string | null
  expires_at?: string | null
  /** Why a streamer rejected it, or what ended it. */
  status_reason?: string
  /** Whole rupiah Midtrans returned (partially refunded or refunded). */
  refunded_amount?: number
  created_at: string
  completed_at?: string | null
  updated_at?: string
}

export interface SnapPayment {
  provider: 'midtrans'
  snap_token: string
  redirect_url: string
  client_key: string
  snap_js_url: string
}

export interface BankTransferPayment {
  provider: 'bank_transfer'
  bank_name: string
  account_number: string
  account_holder: string
  amount: number
  reference_code: string
  expires_at: string
}

export interface DonationCreated {
  donation: Donation
  payment: SnapPayment | BankTransferPayment
}

export interface DonationHistory extends Page<Donation> {
  totals: { completed_amount: number; completed_count: number }
}

/** `GET /api/donations/{id}`. */
export interface DonationDetail {
  donation: Donation
  payment: SnapPayment | BankTransferPayment | null
}

export interface PayoutDetails {
  bank_name: string
  account_number: string
  account_holder: string
}

/** `GET /api/users/me/overlay`: whether an overlay token exists, masked. */
export interface OverlayStatus {
  exists: boolean
  masked_token: string | null
  masked_url: string | null
  created_at: string | null
}

/** `POST /api/users/me/overlay-token`: the new token, shown this once. */
export interface OverlayToken {
  token: string
  overlay_url: string
  socket_path: string
  created_at: string
}

/** A message on `/ws/stream/{id}/` or `/ws/overlay/{token}`. */
export interface SocketEnvelope<T = unknown> {
  type: string
  id?: number
  ts?: string
  /** The stream the event happened on. */
  stream_id?: string
  data: T
}

export interface DonationAlert {
  donation_id: string
  amount: number
  currency?: string
  message: string
  donor_name: string
  payment_method: string
}
