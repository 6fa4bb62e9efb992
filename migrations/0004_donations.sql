-- Donations (issue 5): payment details on donations, streamers' payout accounts and blocked
-- words, Midtrans notifications as received, and the outbox that makes "exactly once" effects
-- (the live alert, the emails) survive a crash or a Redis outage.

ALTER TABLE donations
    -- Shown as "Anonymous" to everyone, the streamer included.
    ADD COLUMN is_anonymous     boolean NOT NULL DEFAULT false,
    -- Bank transfers: the short code the donor writes in the transfer note.
    ADD COLUMN reference_code   text UNIQUE CHECK (reference_code ~ '^[A-Z0-9-]{6,16}$'),
    -- After this a pending donation expires (bank transfers: 48 h; Midtrans: the Snap expiry).
    ADD COLUMN expires_at       timestamptz,
    -- Midtrans reported a different amount than the one stored: never completed, left for a person.
    ADD COLUMN amount_mismatch  boolean NOT NULL DEFAULT false,
    -- What Midtrans' status endpoint last said (never what a notification claimed).
    ADD COLUMN provider_status  text,
    ADD COLUMN payment_type     text,
    ADD COLUMN fraud_status     text,
    ADD COLUMN snap_token       text,
    ADD COLUMN snap_redirect_url text,
    -- Why a streamer rejected it, or what ended it.
    ADD COLUMN status_reason    text NOT NULL DEFAULT '' CHECK (char_length(status_reason) <= 500),
    ADD COLUMN completed_at     timestamptz,
    -- The last time reconciliation asked Midtrans about it.
    ADD COLUMN checked_at       timestamptz;

CREATE INDEX donations_expiry_idx ON donations (expires_at) WHERE status = 'pending';
CREATE INDEX donations_completed_stream_idx ON donations (stream_id, completed_at DESC)
    WHERE status = 'completed';

-- Every status change with who made it: the donation's history for support and audits.
CREATE TABLE donation_transitions (
    id          bigserial PRIMARY KEY,
    donation_id uuid NOT NULL REFERENCES donations (id) ON DELETE CASCADE,
    from_status text NOT NULL,
    to_status   text NOT NULL,
    -- `midtrans`, `streamer`, `expiry`
    source      text NOT NULL,
    detail      text NOT NULL DEFAULT '',
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX donation_transitions_donation_idx ON donation_transitions (donation_id, id);

-- Where a streamer receives bank transfers.
CREATE TABLE payout_accounts (
    user_id        uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    bank_name      text NOT NULL CHECK (char_length(bank_name) BETWEEN 2 AND 100),
    account_number text NOT NULL CHECK (account_number ~ '^[0-9]{5,34}$'),
    account_holder text NOT NULL CHECK (char_length(account_holder) BETWEEN 2 AND 100),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER payout_accounts_updated_at BEFORE UPDATE ON payout_accounts
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Words a streamer does not want in donation messages, stored lower-case.
CREATE TABLE blocked_words (
    streamer_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    word        text NOT NULL CHECK (char_length(word) BETWEEN 1 AND 50 AND word = lower(word)),
    PRIMARY KEY (streamer_id, word)
);

-- Midtrans HTTP notifications whose signature verified, kept verbatim.
CREATE TABLE payment_notifications (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    donation_id        uuid NOT NULL REFERENCES donations (id) ON DELETE CASCADE,
    order_id           text NOT NULL,
    transaction_status text NOT NULL DEFAULT '',
    raw                text NOT NULL,
    received_at        timestamptz NOT NULL DEFAULT now(),
    processed_at       timestamptz,
    -- What processing concluded (`completed`, `unchanged`, ...).
    outcome            text
);
CREATE INDEX payment_notifications_donation_idx ON payment_notifications (donation_id, received_at);
CREATE INDEX payment_notifications_unprocessed_idx ON payment_notifications (received_at)
    WHERE processed_at IS NULL;

-- Effects of a status change, written in the same transaction as the change: at most one row
-- per donation and kind, delivered by a job and marked delivered. A row left undelivered (Redis
-- or SMTP down, a worker killed) is picked up again by reconciliation.
CREATE TABLE donation_outbox (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    donation_id  uuid NOT NULL REFERENCES donations (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('event_received', 'email_streamer_received',
                     'email_donor_receipt', 'email_donor_rejected', 'email_donor_expired')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    UNIQUE (donation_id, kind)
);
CREATE INDEX donation_outbox_undelivered_idx ON donation_outbox (created_at) WHERE delivered_at IS NULL;
