-- Money edges (issue 10): what the donor was told stays what they were told, a transfer that
-- arrives late can still be recorded, partial refunds are not full ones, and one notification
-- replayed many times is one notification.

-- The payout account a bank-transfer donation was told to pay into, as it was then: a streamer
-- changing their account later must not change an earlier donation's instructions.
ALTER TABLE donations
    ADD COLUMN payout_bank_name      text,
    ADD COLUMN payout_account_number text,
    ADD COLUMN payout_account_holder text,
    -- Money Midtrans returned (partial or full refunds), in rupiah.
    ADD COLUMN refunded_amount       numeric(14, 0) NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0),
    -- Midtrans reported a currency other than IDR: never completed, left for a person.
    ADD COLUMN currency_mismatch     boolean NOT NULL DEFAULT false;

UPDATE donations d
   SET payout_bank_name = p.bank_name,
       payout_account_number = p.account_number,
       payout_account_holder = p.account_holder
  FROM streams s JOIN payout_accounts p ON p.user_id = s.streamer_id
 WHERE d.stream_id = s.id AND d.payment_method = 'bank_transfer' AND d.status = 'pending';

ALTER TABLE donations DROP CONSTRAINT donations_status_check;
ALTER TABLE donations ADD CONSTRAINT donations_status_check
    CHECK (status IN ('pending', 'completed', 'failed', 'expired', 'rejected', 'refunded',
                      'partially_refunded'));

-- The same notification body delivered again (Midtrans retries, or a replay) is the same row.
ALTER TABLE payment_notifications
    ADD COLUMN body_sha256 bytea,
    -- Processing attempts by reconciliation: bounded, then left for a person.
    ADD COLUMN attempts    integer NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX payment_notifications_body_idx ON payment_notifications (body_sha256);
