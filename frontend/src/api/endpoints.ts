// Every API call the pages make, by feature. Paths and shapes follow /api/openapi.json.

import { api, request } from './client'
import type {
  AdminDonation,
  AdminStream,
  BlockedWords,
  Comment,
  CreateDonation,
  CreateStream,
  CursorPage,
  Donation,
  DonationCreated,
  DonationHistory,
  DonationStatus,
  DonationDetail,
  IngestSettings,
  OverlayStatus,
  OverlayToken,
  Page,
  PayoutDetails,
  PublicDonation,
  Stream,
  StreamKeyCreated,
  UpdateMe,
  UpdatePayout,
  UpdateStream,
  User,
} from './types'

export const streams = {
  list: (query: { live?: boolean; page?: number; per_page?: number; streamer_id?: string } = {}) => api.get<Page<Stream>>('/api/streams', query),
  get: (id: string) => api.get<Stream>(`/api/streams/${id}`),
  create: (body: CreateStream) => api.post<Stream>('/api/streams', body, { auth: 'required' }),
  update: (id: string, body: UpdateStream) => api.patch<Stream>(`/api/streams/${id}`, body, { auth: 'required' }),
  stop: (id: string) => api.post<Stream>(`/api/streams/${id}/stop`, {}, { auth: 'required' }),
  mine: (userId: string) => api.get<Page<Stream>>('/api/streams', { streamer_id: userId, per_page: 20 }, { auth: 'required' }),
}

export const ingest = {
  get: () => api.get<IngestSettings>('/api/users/me/ingest', undefined, { auth: 'required' }),
  rotate: () => api.post<StreamKeyCreated>('/api/users/me/stream-key', {}, { auth: 'required' }),
}

export const overlay = {
  get: () => api.get<OverlayStatus>('/api/users/me/overlay', undefined, { auth: 'required' }),
  rotate: () => api.post<OverlayToken>('/api/users/me/overlay-token', {}, { auth: 'required' }),
}

export const comments = {
  list: (streamId: string, cursor?: string | null) => api.get<CursorPage<Comment>>(`/api/streams/${streamId}/comments`, { cursor: cursor ?? undefined, limit: 50 }),
  create: (streamId: string, content: string) => api.post<Comment>(`/api/streams/${streamId}/comments`, { content }, { auth: 'required' }),
  remove: (id: string) => api.delete<void>(`/api/comments/${id}`, { auth: 'required' }),
}

export interface HistoryQuery {
  status?: DonationStatus | ''
  stream_id?: string
  from?: string
  to?: string
  page?: number
  per_page?: number
}

export const donations = {
  create: (streamId: string, body: CreateDonation) =>
    api.post<DonationCreated>(`/api/streams/${streamId}/donations`, body, { auth: 'required' }),
  sent: (query: HistoryQuery = {}) => api.get<DonationHistory>('/api/donations/sent', { ...query }, { auth: 'required' }),
  received: (query: HistoryQuery = {}) => api.get<DonationHistory>('/api/donations/received', { ...query }, { auth: 'required' }),
  receivedCsv: (query: HistoryQuery = {}) => request<Response>('GET', '/api/donations/received', { query: { ...query, format: 'csv' }, auth: 'required', raw: true }),
  ofStream: (streamId: string) => api.get<Page<PublicDonation>>(`/api/streams/${streamId}/donations`),
  get: (id: string) => api.get<DonationDetail>(`/api/donations/${id}`, undefined, { auth: 'required' }),
  /** `late`: the transfer arrived after the donation expired (expired → completed). */
  confirm: (id: string, late = false) =>
    api.post<Donation>(`/api/donations/${id}/confirm`, late ? { late: true } : {}, { auth: 'required' }),
  reject: (id: string, reason?: string) => api.post<Donation>(`/api/donations/${id}/reject`, reason ? { reason } : {}, { auth: 'required' }),
}

export const payout = {
  /** 404 `payout_details_missing` until set. */
  get: () => api.get<PayoutDetails>('/api/users/me/payout', undefined, { auth: 'required' }),
  update: (body: UpdatePayout) => api.patch<PayoutDetails>('/api/users/me/payout', body, { auth: 'required' }),
}

export const blockedWords = {
  list: () => api.get<BlockedWords>('/api/users/me/blocked-words', undefined, { auth: 'required' }),
  replace: (words: string[]) => api.put<BlockedWords>('/api/users/me/blocked-words', { words }, { auth: 'required' }),
}

export const account = {
  update: (body: UpdateMe) => api.patch<User>('/api/users/me', body, { auth: 'required' }),
}

export const admin = {
  users: (query: { q?: string; is_active?: boolean | ''; page?: number }) => api.get<Page<User>>('/api/admin/users', { ...query, per_page: 20 }, { auth: 'required' }),
  deactivate: (id: string) => api.post<User>(`/api/admin/users/${id}/deactivate`, {}, { auth: 'required' }),
  reactivate: (id: string) => api.post<User>(`/api/admin/users/${id}/reactivate`, {}, { auth: 'required' }),
  streams: (query: { q?: string; live?: boolean | ''; page?: number }) => api.get<Page<AdminStream>>('/api/admin/streams', { ...query, per_page: 20 }, { auth: 'required' }),
  endStream: (id: string) => api.post<AdminStream>(`/api/admin/streams/${id}/end`, {}, { auth: 'required' }),
  donations: (query: { q?: string; status?: string; page?: number }) => api.get<Page<AdminDonation>>('/api/admin/donations', { ...query, per_page: 20 }, { auth: 'required' }),
}
