//! The staff console's persistence: its searches over users, streams and donations, and the
//! account (de)activation updates.

use sqlx::PgExecutor;
use uuid::Uuid;

use super::AdminDonationRow;
use crate::donations::model::{DonationStatus, PaymentMethod};
use crate::streams::model::Stream;
use crate::users::model::User;

// ---------------------------------------------------------------------------------------------
// Users

/// How many users match `pattern` (an `ILIKE` pattern on username, email or full name; `None`
/// matches all) and `is_active`.
pub(crate) async fn count_users(
    db: impl PgExecutor<'_>,
    pattern: Option<&str>,
    is_active: Option<bool>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "total!" FROM users
           WHERE ($1::text IS NULL OR username ILIKE $1 OR email ILIKE $1
                  OR (first_name || ' ' || last_name) ILIKE $1)
             AND ($2::boolean IS NULL OR is_active = $2)"#,
        pattern,
        is_active
    )
    .fetch_one(db)
    .await
}

/// One page of the users [`count_users`] counts, newest first.
pub(crate) async fn search_users(
    db: impl PgExecutor<'_>,
    pattern: Option<&str>,
    is_active: Option<bool>,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Vec<User>> {
    sqlx::query_as!(
        User,
        "SELECT id, username, email, password_hash, first_name, last_name, is_active, is_staff,
                is_superuser, is_streamer, last_login, date_joined, updated_at
         FROM users
         WHERE ($1::text IS NULL OR username ILIKE $1 OR email ILIKE $1
                OR (first_name || ' ' || last_name) ILIKE $1)
           AND ($2::boolean IS NULL OR is_active = $2)
         ORDER BY date_joined DESC, id LIMIT $3 OFFSET $4",
        pattern,
        is_active,
        limit,
        offset
    )
    .fetch_all(db)
    .await
}

/// The user, locked (`FOR UPDATE`) until the transaction ends.
pub(crate) async fn lock_user(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<User>> {
    sqlx::query_as!(
        User,
        "SELECT id, username, email, password_hash, first_name, last_name, is_active, is_staff,
                is_superuser, is_streamer, last_login, date_joined, updated_at
         FROM users WHERE id = $1 FOR UPDATE",
        id
    )
    .fetch_optional(db)
    .await
}

/// Deactivates the account; returns it.
pub(crate) async fn deactivate_user(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<User> {
    sqlx::query_as!(
        User,
        "UPDATE users SET is_active = false WHERE id = $1
         RETURNING id, username, email, password_hash, first_name, last_name, is_active, is_staff,
                   is_superuser, is_streamer, last_login, date_joined, updated_at",
        id
    )
    .fetch_one(db)
    .await
}

/// Reactivates the account unless it is a superuser's and `by_superuser` is false; `None` when
/// nothing was updated (no such user, or not allowed).
pub(crate) async fn reactivate_user(
    db: impl PgExecutor<'_>,
    id: Uuid,
    by_superuser: bool,
) -> sqlx::Result<Option<User>> {
    sqlx::query_as!(
        User,
        "UPDATE users SET is_active = true WHERE id = $1 AND (NOT is_superuser OR $2)
         RETURNING id, username, email, password_hash, first_name, last_name, is_active, is_staff,
                   is_superuser, is_streamer, last_login, date_joined, updated_at",
        id,
        by_superuser
    )
    .fetch_optional(db)
    .await
}

// ---------------------------------------------------------------------------------------------
// Streams

/// How many streams match `pattern` (an `ILIKE` pattern on the title or the streamer's
/// username; `None` matches all) and `live`.
pub(crate) async fn count_streams(
    db: impl PgExecutor<'_>,
    pattern: Option<&str>,
    live: Option<bool>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "total!" FROM streams s JOIN users u ON u.id = s.streamer_id
           WHERE ($1::text IS NULL OR s.title ILIKE $1 OR u.username ILIKE $1)
             AND ($2::boolean IS NULL OR s.is_active = $2)"#,
        pattern,
        live
    )
    .fetch_one(db)
    .await
}

/// One page of the streams [`count_streams`] counts, live ones first, then newest.
pub(crate) async fn search_streams(
    db: impl PgExecutor<'_>,
    pattern: Option<&str>,
    live: Option<bool>,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Vec<Stream>> {
    sqlx::query_as!(
        Stream,
        "SELECT s.id, s.streamer_id, u.username AS streamer_username, s.title, s.description,
                s.is_active, s.started_at, s.ended_at, s.created_at
         FROM streams s JOIN users u ON u.id = s.streamer_id
         WHERE ($1::text IS NULL OR s.title ILIKE $1 OR u.username ILIKE $1)
           AND ($2::boolean IS NULL OR s.is_active = $2)
         ORDER BY s.is_active DESC, coalesce(s.started_at, s.created_at) DESC, s.id
         LIMIT $3 OFFSET $4",
        pattern,
        live,
        limit,
        offset
    )
    .fetch_all(db)
    .await
}

// ---------------------------------------------------------------------------------------------
// Donations

/// How many donations match `pattern` (an `ILIKE` pattern on the donor's or streamer's
/// username, the stream title, the message or the order id; `None` matches all) and `status`.
pub(crate) async fn count_donations(
    db: impl PgExecutor<'_>,
    pattern: Option<&str>,
    status: Option<DonationStatus>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "total!"
           FROM donations d
           JOIN streams s ON s.id = d.stream_id
           JOIN users st ON st.id = s.streamer_id
           LEFT JOIN users du ON du.id = d.donor_id
           WHERE ($1::text IS NULL OR du.username ILIKE $1 OR st.username ILIKE $1
                  OR s.title ILIKE $1 OR d.message ILIKE $1 OR d.transaction_id::text ILIKE $1)
             AND ($2::text IS NULL OR d.status = $2)"#,
        pattern,
        status.map(DonationStatus::as_str)
    )
    .fetch_one(db)
    .await
}

/// One page of the donations [`count_donations`] counts, newest first.
pub(crate) async fn search_donations(
    db: impl PgExecutor<'_>,
    pattern: Option<&str>,
    status: Option<DonationStatus>,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Vec<AdminDonationRow>> {
    sqlx::query_as!(
        AdminDonationRow,
        r#"SELECT d.id, d.transaction_id, d.stream_id, s.title AS stream_title,
                  st.id AS streamer_id, st.username AS streamer_username,
                  du.id AS "donor_id?", du.username AS "donor_username?",
                  d.amount::bigint AS "amount!", d.message,
                  d.payment_method AS "payment_method: PaymentMethod",
                  d.status AS "status: DonationStatus",
                  d.created_at, d.updated_at
           FROM donations d
           JOIN streams s ON s.id = d.stream_id
           JOIN users st ON st.id = s.streamer_id
           LEFT JOIN users du ON du.id = d.donor_id
           WHERE ($1::text IS NULL OR du.username ILIKE $1 OR st.username ILIKE $1
                  OR s.title ILIKE $1 OR d.message ILIKE $1 OR d.transaction_id::text ILIKE $1)
             AND ($2::text IS NULL OR d.status = $2)
           ORDER BY d.created_at DESC, d.id LIMIT $3 OFFSET $4"#,
        pattern,
        status.map(DonationStatus::as_str),
        limit,
        offset
    )
    .fetch_all(db)
    .await
}
