//! The donations feature's persistence: every statement on `donations`, `donation_transitions`,
//! `donation_outbox`, `payment_notifications`, `payout_accounts` and `blocked_words`, checked
//! against the schema at compile time.
//!
//! Whole donations are read with one column list (`donation_sql!`): statements that read or
//! return a `donations` row name it `d`, and the list goes between the statement's head and
//! tail (sqlx accepts `"lit" + "lit"` as a query's source).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::jobs::Parties;
use super::model::{Donation, DonationStatus, Effect, NewDonation, PaymentMethod, PayoutAccount};
use super::views::Row;
use crate::payments::midtrans::TransactionStatus;

/// Expands to `sqlx::$mac!($head.. $before + <the donation's columns> + $after, $args..)`:
/// `donations d`'s columns as a [`Donation`] reads them (the enum columns with their type
/// overrides), so every statement that reads whole donations shares one column list.
macro_rules! donation_sql {
    ($mac:ident, [$($head:tt)*], [$($before:literal),* $(,)?], [$($after:literal),* $(,)?] $(, $arg:expr)* $(,)?) => {
        sqlx::$mac!(
            $($head)*
            $($before +)*
            r#"d.id, d.transaction_id, d.stream_id, d.donor_id, d.amount, d.message,
               d.payment_method AS "payment_method: PaymentMethod",
               d.status AS "status: DonationStatus",
               d.is_anonymous, d.reference_code, d.expires_at, d.amount_mismatch,
               d.provider_status, d.payment_type, d.fraud_status, d.snap_token, d.snap_redirect_url,
               d.status_reason, d.completed_at, d.checked_at, d.created_at, d.updated_at,
               d.payout_bank_name, d.payout_account_number, d.payout_account_holder,
               d.refunded_amount, d.currency_mismatch"#
            $(+ $after)*
            $(, $arg)*
        )
    };
}

/// The [`Donation`] in a record read with `donation_sql!` (moves its donation fields out).
macro_rules! donation_from {
    ($r:ident) => {
        Donation {
            id: $r.id,
            transaction_id: $r.transaction_id,
            stream_id: $r.stream_id,
            donor_id: $r.donor_id,
            amount: $r.amount,
            message: $r.message,
            payment_method: $r.payment_method,
            status: $r.status,
            is_anonymous: $r.is_anonymous,
            reference_code: $r.reference_code,
            expires_at: $r.expires_at,
            amount_mismatch: $r.amount_mismatch,
            provider_status: $r.provider_status,
            payment_type: $r.payment_type,
            fraud_status: $r.fraud_status,
            snap_token: $r.snap_token,
            snap_redirect_url: $r.snap_redirect_url,
            status_reason: $r.status_reason,
            completed_at: $r.completed_at,
            checked_at: $r.checked_at,
            created_at: $r.created_at,
            updated_at: $r.updated_at,
            payout_bank_name: $r.payout_bank_name,
            payout_account_number: $r.payout_account_number,
            payout_account_holder: $r.payout_account_holder,
            refunded_amount: $r.refunded_amount,
            currency_mismatch: $r.currency_mismatch,
        }
    };
}

/// `sqlx::query!` of [`Row`]s (a donation with its stream, streamer and donor); `$tail` is the
/// `WHERE`/`ORDER BY`/`LIMIT` that follows the joins.
macro_rules! select_rows {
    ([$($tail:literal),* $(,)?] $(, $arg:expr)* $(,)?) => {
        donation_sql!(
            query,
            [],
            ["SELECT "],
            [
                r#", s.title AS stream_title, s.streamer_id, su.username AS streamer_username,
                   u.username AS "donor_username?",
                   COALESCE(NULLIF(trim(u.first_name || ' ' || u.last_name), ''), u.username)
                       AS "donor_display_name?"
                  FROM donations d
                  JOIN streams s ON s.id = d.stream_id
                  JOIN users su ON su.id = s.streamer_id
                  LEFT JOIN users u ON u.id = d.donor_id"#,
                $($tail),*
            ]
            $(, $arg)*
        )
    };
}

/// The [`Row`] in a record read with `select_rows!`.
macro_rules! row_from {
    ($r:ident) => {
        Row {
            stream_title: $r.stream_title,
            streamer_id: $r.streamer_id,
            streamer_username: $r.streamer_username,
            donor_username: $r.donor_username,
            donor_display_name: $r.donor_display_name,
            donation: donation_from!($r),
        }
    };
}

// ---- Donations ----------------------------------------------------------------------------

/// What a new donation to a stream needs to know about it.
#[derive(Debug)]
pub(crate) struct StreamInfo {
    pub streamer_id: Uuid,
    /// The stream is live and its streamer's account active.
    pub is_active: bool,
}

/// The stream a donation would go to, with whether it takes donations now.
pub(crate) async fn donation_target(
    db: impl PgExecutor<'_>,
    stream_id: Uuid,
) -> sqlx::Result<Option<StreamInfo>> {
    // A deactivated streamer's streams take no donations (deactivation also ended them).
    sqlx::query_as!(
        StreamInfo,
        r#"SELECT s.streamer_id, s.is_active AND u.is_active AS "is_active!"
             FROM streams s JOIN users u ON u.id = s.streamer_id WHERE s.id = $1"#,
        stream_id,
    )
    .fetch_optional(db)
    .await
}

/// The streamer whose stream this is.
pub(crate) async fn stream_owner(db: impl PgExecutor<'_>, stream_id: Uuid) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!("SELECT streamer_id FROM streams WHERE id = $1", stream_id)
        .fetch_one(db)
        .await
}

/// Stores a new pending donation; a bank transfer keeps its reference code and the payout
/// account its donor is told to pay into.
pub(crate) async fn insert_donation(
    db: impl PgExecutor<'_>,
    new: &NewDonation,
    method: PaymentMethod,
    transfer: Option<(&str, &PayoutAccount)>,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<Donation> {
    let (reference_code, payout) = transfer.unzip();
    donation_sql!(
        query_as,
        [Donation,],
        ["INSERT INTO donations AS d (stream_id, donor_id, amount, message, payment_method,
                                      is_anonymous, reference_code, expires_at,
                                      payout_bank_name, payout_account_number, payout_account_holder)
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING "],
        [],
        new.stream_id,
        new.donor_id,
        new.amount.to_decimal(),
        new.message.as_str(),
        method.as_str(),
        new.anonymous,
        reference_code,
        expires_at,
        payout.map(|p| p.bank_name.as_str()),
        payout.map(|p| p.account_number.as_str()),
        payout.map(|p| p.account_holder.as_str()),
    )
    .fetch_one(db)
    .await
}

/// Keeps the Snap token and redirect URL Midtrans issued for a donation.
pub(crate) async fn set_snap_token(
    db: impl PgExecutor<'_>,
    id: Uuid,
    token: &str,
    redirect_url: &str,
) -> sqlx::Result<Donation> {
    donation_sql!(
        query_as,
        [Donation,],
        ["UPDATE donations AS d SET snap_token = $2, snap_redirect_url = $3 WHERE id = $1 RETURNING "],
        [],
        id,
        token,
        redirect_url,
    )
    .fetch_one(db)
    .await
}

/// One donation by id.
pub(crate) async fn find_donation(
    db: impl PgExecutor<'_>,
    id: Uuid,
) -> sqlx::Result<Option<Donation>> {
    donation_sql!(
        query_as,
        [Donation,],
        ["SELECT "],
        [" FROM donations d WHERE d.id = $1"],
        id
    )
    .fetch_optional(db)
    .await
}

/// One donation by id, locked (`FOR UPDATE`) until the transaction ends.
pub(crate) async fn lock_donation(
    db: impl PgExecutor<'_>,
    id: Uuid,
) -> sqlx::Result<Option<Donation>> {
    donation_sql!(
        query_as,
        [Donation,],
        ["SELECT "],
        [" FROM donations d WHERE d.id = $1 FOR UPDATE"],
        id
    )
    .fetch_optional(db)
    .await
}

/// Writes a donation's new status (and `completed_at` when it completes; `reason`, unless
/// empty, as its `status_reason`). The caller holds the row lock and checked the move.
pub(crate) async fn set_status(
    db: impl PgExecutor<'_>,
    id: Uuid,
    to: DonationStatus,
    reason: &str,
) -> sqlx::Result<Donation> {
    donation_sql!(
        query_as,
        [Donation,],
        ["UPDATE donations AS d
             SET status = $2,
                 status_reason = CASE WHEN $3 = '' THEN status_reason ELSE $3 END,
                 completed_at = CASE WHEN $2 = 'completed' THEN now() ELSE completed_at END
           WHERE id = $1
          RETURNING "],
        [],
        id,
        to.as_str(),
        reason,
    )
    .fetch_one(db)
    .await
}

/// Records a status change in `donation_transitions`.
pub(crate) async fn insert_transition(
    db: impl PgExecutor<'_>,
    donation_id: Uuid,
    from: DonationStatus,
    to: DonationStatus,
    source: &str,
    detail: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO donation_transitions (donation_id, from_status, to_status, source, detail)
         VALUES ($1, $2, $3, $4, $5)",
        donation_id,
        from.as_str(),
        to.as_str(),
        source,
        detail,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Writes what Midtrans' status endpoint said about a donation (its statuses, the payment type,
/// the refunded amount if larger) and flags a mismatched amount or currency; marks it checked.
pub(crate) async fn record_verified_status(
    db: impl PgExecutor<'_>,
    id: Uuid,
    status: &TransactionStatus,
    amount_mismatch: bool,
    currency_mismatch: bool,
    refunded: Option<Decimal>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE donations SET provider_status = $2, fraud_status = $3,
                payment_type = COALESCE($4, payment_type), checked_at = now(),
                amount_mismatch = amount_mismatch OR $5,
                currency_mismatch = currency_mismatch OR $6,
                refunded_amount = GREATEST(refunded_amount, COALESCE($7, refunded_amount))
          WHERE id = $1",
        id,
        status.transaction_status.as_str(),
        status.fraud_status.as_deref(),
        status.payment_type.as_deref(),
        amount_mismatch,
        currency_mismatch,
        refunded,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Marks a donation as just asked about at Midtrans.
pub(crate) async fn mark_checked(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("UPDATE donations SET checked_at = now() WHERE id = $1", id)
        .execute(db)
        .await?;
    Ok(())
}

/// The pending bank transfers to a streamer's streams.
pub(crate) async fn pending_transfers_to(
    db: impl PgExecutor<'_>,
    streamer_id: Uuid,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT d.id FROM donations d JOIN streams s ON s.id = d.stream_id
          WHERE s.streamer_id = $1 AND d.status = 'pending' AND d.payment_method = 'bank_transfer'",
        streamer_id,
    )
    .fetch_all(db)
    .await
}

/// Up to 500 pending donations paid by `method` whose expiry is at or before `now`, soonest
/// expired first.
pub(crate) async fn overdue(
    db: impl PgExecutor<'_>,
    method: PaymentMethod,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM donations
          WHERE status = 'pending' AND payment_method = $1 AND expires_at <= $2
          ORDER BY expires_at LIMIT 500",
        method.as_str(),
        now,
    )
    .fetch_all(db)
    .await
}

/// Claims up to `limit` pending Midtrans donations created at or before `created_before` or
/// expired by `now`, not checked since `checked_before`: marks them checked at `now` and returns
/// them. Rows another transaction holds are skipped (`FOR UPDATE SKIP LOCKED`).
pub(crate) async fn claim_midtrans_checks(
    db: impl PgExecutor<'_>,
    created_before: DateTime<Utc>,
    now: DateTime<Utc>,
    checked_before: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "UPDATE donations SET checked_at = $2
          WHERE id IN (SELECT id FROM donations
                        WHERE status = 'pending' AND payment_method = 'midtrans'
                          AND (created_at <= $1 OR expires_at <= $2)
                          AND (checked_at IS NULL OR checked_at <= $3)
                        ORDER BY created_at LIMIT $4
                        FOR UPDATE SKIP LOCKED)
         RETURNING id",
        created_before,
        now,
        checked_before,
        limit,
    )
    .fetch_all(db)
    .await
}

// ---- Views and history --------------------------------------------------------------------

/// One donation with its stream and donor.
pub(crate) async fn row(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Row> {
    let r = select_rows!([" WHERE d.id = $1"], id).fetch_one(db).await?;
    Ok(row_from!(r))
}

/// Whether a stream exists.
pub(crate) async fn stream_exists(db: impl PgExecutor<'_>, stream_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM streams WHERE id = $1) AS "exists!""#,
        stream_id
    )
    .fetch_one(db)
    .await
}

/// A page of a stream's completed donations, most recently completed first.
pub(crate) async fn completed_rows(
    db: impl PgExecutor<'_>,
    stream_id: Uuid,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Vec<Row>> {
    let rows = select_rows!(
        [
            " WHERE d.stream_id = $1 AND d.status = 'completed'
          ORDER BY d.completed_at DESC NULLS LAST, d.created_at DESC, d.id DESC LIMIT $2 OFFSET $3"
        ],
        stream_id,
        limit,
        offset,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| row_from!(r)).collect())
}

/// How many completed donations a stream has.
pub(crate) async fn count_completed(db: impl PgExecutor<'_>, stream_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM donations WHERE stream_id = $1 AND status = 'completed'"#,
        stream_id
    )
    .fetch_one(db)
    .await
}

/// Whose donation history is read: the donations a user sent, or those to their streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Sent,
    Received,
}

/// The optional filters of a donation history (each `None` matches every donation).
#[derive(Debug)]
pub(crate) struct HistoryFilters {
    pub status: Option<DonationStatus>,
    pub stream_id: Option<Uuid>,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created at or before.
    pub to: Option<DateTime<Utc>>,
}

/// Totals over every page of a filtered history.
#[derive(Debug)]
pub(crate) struct HistorySums {
    pub total: i64,
    /// Completed and partially refunded donations' amounts less what was refunded.
    pub completed_amount: Decimal,
    /// Completed and partially refunded donations.
    pub completed_count: i64,
}

/// `query!` of a history's rows on one side (`$side`, the `WHERE` on `$1`). The filters are
/// static (`$n IS NULL OR ...`), so each side is one checked statement.
macro_rules! history_rows_query {
    ($side:literal, $user_id:expr, $f:expr, $limit:expr, $offset:expr) => {
        select_rows!(
            [
                $side,
                " AND ($2::text IS NULL OR d.status = $2)
                  AND ($3::uuid IS NULL OR d.stream_id = $3)
                  AND ($4::timestamptz IS NULL OR d.created_at >= $4)
                  AND ($5::timestamptz IS NULL OR d.created_at <= $5)
                ORDER BY d.created_at DESC, d.id DESC LIMIT $6 OFFSET $7"
            ],
            $user_id,
            $f.status.map(DonationStatus::as_str),
            $f.stream_id,
            $f.from,
            $f.to,
            $limit,
            $offset,
        )
    };
}

/// `query_as!` of a history's [`HistorySums`] on one side (as `history_rows_query!`).
macro_rules! history_totals_query {
    ($side:literal, $user_id:expr, $f:expr) => {
        sqlx::query_as!(
            HistorySums,
            r#"SELECT count(*) AS "total!",
                      COALESCE(sum(d.amount - d.refunded_amount)
                               FILTER (WHERE d.status IN ('completed', 'partially_refunded')), 0)
                          AS "completed_amount!",
                      count(*) FILTER (WHERE d.status IN ('completed', 'partially_refunded'))
                          AS "completed_count!"
                 FROM donations d JOIN streams s ON s.id = d.stream_id"#
                + $side
                + " AND ($2::text IS NULL OR d.status = $2)
                    AND ($3::uuid IS NULL OR d.stream_id = $3)
                    AND ($4::timestamptz IS NULL OR d.created_at >= $4)
                    AND ($5::timestamptz IS NULL OR d.created_at <= $5)",
            $user_id,
            $f.status.map(DonationStatus::as_str),
            $f.stream_id,
            $f.from,
            $f.to,
        )
    };
}

/// The filtered history of `user_id`'s side, newest first: `limit` rows after `offset`.
pub(crate) async fn history_rows(
    db: impl PgExecutor<'_>,
    side: Side,
    user_id: Uuid,
    filters: &HistoryFilters,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Vec<Row>> {
    Ok(match side {
        Side::Sent => {
            history_rows_query!(" WHERE d.donor_id = $1", user_id, filters, limit, offset)
                .fetch_all(db)
                .await?
                .into_iter()
                .map(|r| row_from!(r))
                .collect()
        }
        Side::Received => {
            history_rows_query!(" WHERE s.streamer_id = $1", user_id, filters, limit, offset)
                .fetch_all(db)
                .await?
                .into_iter()
                .map(|r| row_from!(r))
                .collect()
        }
    })
}

/// Totals over the whole filtered history of `user_id`'s side.
pub(crate) async fn history_totals(
    db: impl PgExecutor<'_>,
    side: Side,
    user_id: Uuid,
    filters: &HistoryFilters,
) -> sqlx::Result<HistorySums> {
    match side {
        Side::Sent => {
            history_totals_query!(" WHERE d.donor_id = $1", user_id, filters)
                .fetch_one(db)
                .await
        }
        Side::Received => {
            history_totals_query!(" WHERE s.streamer_id = $1", user_id, filters)
                .fetch_one(db)
                .await
        }
    }
}

// ---- Outbox -------------------------------------------------------------------------------

/// Writes an effect of a status change to the outbox; `None` if the donation already has one of
/// this kind.
pub(crate) async fn insert_outbox(
    db: impl PgExecutor<'_>,
    donation_id: Uuid,
    kind: Effect,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "INSERT INTO donation_outbox (donation_id, kind) VALUES ($1, $2)
         ON CONFLICT (donation_id, kind) DO NOTHING RETURNING id",
        donation_id,
        kind.as_str(),
    )
    .fetch_optional(db)
    .await
}

/// Up to `limit` undelivered outbox rows created at or before `before` and tried fewer than
/// `max_attempts` times, oldest first.
pub(crate) async fn stuck_outbox(
    db: impl PgExecutor<'_>,
    before: DateTime<Utc>,
    limit: i64,
    max_attempts: i32,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM donation_outbox
          WHERE delivered_at IS NULL AND created_at <= $1 AND attempts < $3
          ORDER BY created_at LIMIT $2",
        before,
        limit,
        max_attempts,
    )
    .fetch_all(db)
    .await
}

/// What delivering one outbox row needs, read in one query: the effect, whether it is done,
/// the donation and the people and stream it involves.
#[derive(Debug)]
pub(crate) struct OutboxWork {
    pub kind: Effect,
    pub delivered_at: Option<DateTime<Utc>>,
    pub donation: Donation,
    pub parties: Parties,
}

/// An outbox row with its donation, stream, streamer and donor.
pub(crate) async fn outbox_work(
    db: impl PgExecutor<'_>,
    outbox_id: Uuid,
) -> sqlx::Result<Option<OutboxWork>> {
    let r = donation_sql!(
        query,
        [],
        [r#"SELECT o.kind AS "kind: Effect", o.delivered_at, "#],
        [r#", s.title AS stream_title,
              COALESCE(NULLIF(trim(su.first_name || ' ' || su.last_name), ''), su.username)
                  AS "streamer_name!",
              su.email AS streamer_email,
              COALESCE(NULLIF(trim(du.first_name || ' ' || du.last_name), ''), du.username)
                  AS "donor_name?",
              du.email AS "donor_email?"
         FROM donation_outbox o
         JOIN donations d ON d.id = o.donation_id
         JOIN streams s ON s.id = d.stream_id
         JOIN users su ON su.id = s.streamer_id
         LEFT JOIN users du ON du.id = d.donor_id
        WHERE o.id = $1"#],
        outbox_id,
    )
    .fetch_optional(db)
    .await?;
    Ok(r.map(|r| OutboxWork {
        kind: r.kind,
        delivered_at: r.delivered_at,
        parties: Parties {
            stream_title: r.stream_title,
            streamer_name: r.streamer_name,
            streamer_email: r.streamer_email,
            donor_name: r.donor_name,
            donor_email: r.donor_email,
        },
        donation: donation_from!(r),
    }))
}

/// Takes the session advisory lock on an outbox row's email (`pg_try_advisory_lock`, held until
/// released or the connection closes); `false` if another session holds it.
pub(crate) async fn try_lock_outbox_email(
    db: impl PgExecutor<'_>,
    outbox_id: Uuid,
) -> sqlx::Result<bool> {
    // `$1::text` takes the id's text form, as the uuid's own cast does.
    sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_lock(hashtextextended($1::text, 0)) AS "locked!""#,
        outbox_id.to_string(),
    )
    .fetch_one(db)
    .await
}

/// When an outbox row was delivered (`None`: not yet).
pub(crate) async fn outbox_delivered_at(
    db: impl PgExecutor<'_>,
    outbox_id: Uuid,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        "SELECT delivered_at FROM donation_outbox WHERE id = $1",
        outbox_id
    )
    .fetch_one(db)
    .await
}

/// Locks an outbox row (`FOR UPDATE NOWAIT`: fails at once if another transaction holds it) and
/// reads when it was delivered; `None` if the row is gone.
pub(crate) async fn lock_outbox_nowait(
    db: impl PgExecutor<'_>,
    outbox_id: Uuid,
) -> sqlx::Result<Option<Option<DateTime<Utc>>>> {
    sqlx::query_scalar!(
        "SELECT delivered_at FROM donation_outbox WHERE id = $1 FOR UPDATE NOWAIT",
        outbox_id
    )
    .fetch_optional(db)
    .await
}

/// Marks an outbox row delivered (one more attempt, no error).
pub(crate) async fn mark_outbox_delivered(
    db: impl PgExecutor<'_>,
    outbox_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE donation_outbox SET delivered_at = now(), attempts = attempts + 1, last_error = NULL
          WHERE id = $1",
        outbox_id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Records a failed delivery attempt of an outbox row and why.
pub(crate) async fn record_outbox_failure(
    db: impl PgExecutor<'_>,
    outbox_id: Uuid,
    error: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE donation_outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1",
        outbox_id,
        error,
    )
    .execute(db)
    .await?;
    Ok(())
}

// ---- Midtrans notifications ---------------------------------------------------------------

/// The donation with this Midtrans order id.
pub(crate) async fn donation_id_by_transaction(
    db: impl PgExecutor<'_>,
    transaction_id: Uuid,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM donations WHERE transaction_id = $1",
        transaction_id
    )
    .fetch_optional(db)
    .await
}

/// Stores a verified notification; `None` if one with the same body is stored already.
pub(crate) async fn insert_notification(
    db: impl PgExecutor<'_>,
    donation_id: Uuid,
    order_id: &str,
    transaction_status: &str,
    raw: &str,
    body_sha256: &[u8],
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "INSERT INTO payment_notifications (donation_id, order_id, transaction_status, raw, body_sha256)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (body_sha256) DO NOTHING RETURNING id",
        donation_id,
        order_id,
        transaction_status,
        raw,
        body_sha256,
    )
    .fetch_optional(db)
    .await
}

/// The stored notification with this body.
pub(crate) async fn notification_id_by_body(
    db: impl PgExecutor<'_>,
    body_sha256: &[u8],
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        "SELECT id FROM payment_notifications WHERE body_sha256 = $1",
        body_sha256
    )
    .fetch_one(db)
    .await
}

/// A stored notification's processing state and its donation.
#[derive(Debug)]
pub(crate) struct NotifiedDonation {
    pub processed_at: Option<DateTime<Utc>>,
    pub donation: Donation,
}

/// A notification and its donation, in one read.
pub(crate) async fn notified_donation(
    db: impl PgExecutor<'_>,
    notification_id: Uuid,
) -> sqlx::Result<Option<NotifiedDonation>> {
    let r = donation_sql!(
        query,
        [],
        ["SELECT n.processed_at, "],
        [" FROM payment_notifications n
           JOIN donations d ON d.id = n.donation_id
          WHERE n.id = $1"],
        notification_id,
    )
    .fetch_optional(db)
    .await?;
    Ok(r.map(|r| NotifiedDonation {
        processed_at: r.processed_at,
        donation: donation_from!(r),
    }))
}

/// Marks processed, with `outcome`, a notification and every unprocessed one of its donation
/// received at or before `asked_at`.
pub(crate) async fn settle_notifications(
    db: impl PgExecutor<'_>,
    notification_id: Uuid,
    donation_id: Uuid,
    outcome: &str,
    asked_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE payment_notifications SET processed_at = now(), outcome = $3
          WHERE processed_at IS NULL AND (id = $1 OR (donation_id = $2 AND received_at <= $4))",
        notification_id,
        donation_id,
        outcome,
        asked_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Claims up to `limit` unprocessed notifications due for another try (requeued fewer than
/// `max_attempts` times, each after twice the wait of the one before, starting at
/// `base_secs`): counts the attempt and returns them. Rows another transaction holds are
/// skipped (`FOR UPDATE SKIP LOCKED`).
pub(crate) async fn requeue_notifications(
    db: impl PgExecutor<'_>,
    base_secs: f64,
    limit: i64,
    max_attempts: i32,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "UPDATE payment_notifications SET attempts = attempts + 1
          WHERE id IN (SELECT id FROM payment_notifications
                        WHERE processed_at IS NULL AND attempts < $3
                          AND received_at <= now() - make_interval(secs => $1 * power(2, attempts))
                        ORDER BY received_at LIMIT $2
                        FOR UPDATE SKIP LOCKED)
         RETURNING id",
        base_secs,
        limit,
        max_attempts,
    )
    .fetch_all(db)
    .await
}

// ---- Streamer settings --------------------------------------------------------------------

/// A user's payout account.
pub(crate) async fn payout_account(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
) -> sqlx::Result<Option<PayoutAccount>> {
    sqlx::query_as!(
        PayoutAccount,
        "SELECT bank_name, account_number, account_holder, updated_at FROM payout_accounts WHERE user_id = $1",
        user_id
    )
    .fetch_optional(db)
    .await
}

/// Sets or replaces a user's payout account.
pub(crate) async fn upsert_payout_account(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    bank_name: &str,
    account_number: &str,
    account_holder: &str,
) -> sqlx::Result<PayoutAccount> {
    sqlx::query_as!(
        PayoutAccount,
        "INSERT INTO payout_accounts (user_id, bank_name, account_number, account_holder)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id) DO UPDATE
            SET bank_name = EXCLUDED.bank_name, account_number = EXCLUDED.account_number,
                account_holder = EXCLUDED.account_holder
         RETURNING bank_name, account_number, account_holder, updated_at",
        user_id,
        bank_name,
        account_number,
        account_holder,
    )
    .fetch_one(db)
    .await
}

/// A streamer's blocked words (lower-case, sorted).
pub(crate) async fn blocked_words(
    db: impl PgExecutor<'_>,
    streamer_id: Uuid,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "SELECT word FROM blocked_words WHERE streamer_id = $1 ORDER BY word",
        streamer_id
    )
    .fetch_all(db)
    .await
}

/// Replaces a streamer's blocked words with `words` (two statements: run it in a transaction).
pub(crate) async fn replace_blocked_words(
    conn: &mut PgConnection,
    streamer_id: Uuid,
    words: &[String],
) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM blocked_words WHERE streamer_id = $1",
        streamer_id
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "INSERT INTO blocked_words (streamer_id, word) SELECT $1, unnest($2::text[])",
        streamer_id,
        words,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}
