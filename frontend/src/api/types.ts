// The names the pages use for what the API sends. Every shape comes from the OpenAPI document:
// scripts/api-types.sh generates ./schema.d.ts from `siaran openapi`, and `make test` fails when
// it is stale, so a field renamed or retyped in Rust shows up here as a type error.

import type { components } from './schema'

type Schemas = components['schemas']

export type User = Schemas['UserView']
export type PublicUser = Schemas['PublicUser']
export type TokenResponse = Schemas['TokenResponse']

/** A numbered page of `T` (`Paginated_*` in the document). */
export type Page<T> = Omit<Schemas['Paginated_StreamView'], 'items'> & { items: T[] }
/** A cursor page of `T` (`CursorPage_*` in the document). */
export type CursorPage<T> = Omit<Schemas['CursorPage_Comment'], 'items'> & { items: T[] }

export type StreamHealth = Schemas['StreamHealth']
export type Stream = Schemas['StreamView']
/** `GET /api/users/me/ingest`: where to publish; the key only masked. */
export type IngestSettings = Schemas['IngestSettings']
/** `POST /api/users/me/stream-key`: the new key, shown this once. */
export type StreamKeyCreated = Schemas['StreamKeyCreated']

export type Comment = Schemas['Comment']

export type DonationStatus = Schemas['DonationStatus']
export type PaymentMethod = Schemas['PaymentMethod']
/** A donation as its donor or its streamer sees it. */
export type Donation = Schemas['DonationView']
/** A completed donation as anyone sees it on the stream's page. */
export type PublicDonation = Schemas['PublicDonation']
export type AdminDonation = Schemas['AdminDonation']
export type AdminStream = Schemas['AdminStream']

export type Payment = Schemas['Payment']
export type SnapPayment = Extract<Payment, { provider: 'midtrans' }>
export type BankTransferPayment = Extract<Payment, { provider: 'bank_transfer' }>
export type DonationCreated = Schemas['CreatedDonation']
export type DonationHistory = Schemas['DonationHistory']
/** `GET /api/donations/{id}`. */
export type DonationDetail = Schemas['DonationDetail']
export type PayoutDetails = Schemas['PayoutAccount']
export type UpdatePayout = Schemas['UpdatePayout']

// Request bodies.
export type CreateStream = Schemas['CreateStream']
export type UpdateStream = Schemas['UpdateStream']
export type CreateDonation = Schemas['CreateDonation']
export type UpdateMe = Schemas['UpdateMe']
export type BlockedWords = Schemas['BlockedWords']

/** `GET /api/users/me/overlay`: whether an overlay token exists, masked. */
export type OverlayStatus = Schemas['OverlayStatus']
/** `POST /api/users/me/overlay-token`: the new token, shown this once. */
export type OverlayToken = Schemas['OverlayToken']

/**
 * A message on `/ws/stream/{id}/` or `/ws/overlay/{token}`, with `data` as the caller reads it.
 * Events (`Envelope`) carry `id`, `ts` and `stream_id`; control messages (`ready`, `pong`,
 * `error`) do not.
 */
export type SocketEnvelope<T = unknown> = { type: string; data: T } & Partial<Pick<Schemas['Envelope'], 'id' | 'ts' | 'stream_id'>>
export type DonationAlert = Schemas['DonationReceived']
