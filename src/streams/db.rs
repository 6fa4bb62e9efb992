//! The streams feature's persistence: streams, stream keys and ingest heartbeats (and the
//! `is_streamer` flag that creating a stream or a key sets). Every query is checked at compile
//! time.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use super::model::Stream;

/// `sqlx::query_as!(Stream, ...)` with the one column list every [`Stream`] query selects,
/// followed by the given tail (a string literal: `WHERE`, `ORDER BY`, ...) and its arguments.
macro_rules! select_stream {
    ($tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            Stream,
            "SELECT s.id, s.streamer_id, u.username AS streamer_username, s.title, \
             s.description, s.is_active, s.started_at, s.ended_at, s.created_at \
             FROM streams s JOIN users u ON u.id = s.streamer_id " + $tail
            $(, $arg)*
        )
    };
}

/// Makes the user a streamer (a no-op when they are one).
pub(crate) async fn mark_streamer(db: impl PgExecutor<'_>, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET is_streamer = true WHERE id = $1 AND NOT is_streamer",
        user_id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Inserts a (not yet live) stream and returns its id.
pub(crate) async fn insert(
    db: impl PgExecutor<'_>,
    streamer_id: Uuid,
    title: &str,
    description: &str,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        "INSERT INTO streams (streamer_id, title, description) VALUES ($1, $2, $3) RETURNING id",
        streamer_id,
        title,
        description
    )
    .fetch_one(db)
    .await
}

/// Inserts a stream with only a title (the description is the column's default) and returns
/// its id.
pub(crate) async fn insert_titled(
    db: impl PgExecutor<'_>,
    streamer_id: Uuid,
    title: &str,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        "INSERT INTO streams (streamer_id, title) VALUES ($1, $2) RETURNING id",
        streamer_id,
        title
    )
    .fetch_one(db)
    .await
}

/// One stream with its streamer's name.
pub(crate) async fn find(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Stream>> {
    select_stream!("WHERE s.id = $1", id)
        .fetch_optional(db)
        .await
}

/// A page of streams, optionally only live (or not live) ones and one streamer's: live first
/// (most recently started first), then the newest.
pub(crate) async fn list(
    db: impl PgExecutor<'_>,
    live: Option<bool>,
    streamer_id: Option<Uuid>,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Vec<Stream>> {
    select_stream!(
        "WHERE ($1::bool IS NULL OR s.is_active = $1)
           AND ($4::uuid IS NULL OR s.streamer_id = $4)
         ORDER BY s.is_active DESC, s.started_at DESC NULLS LAST, s.created_at DESC, s.id
         LIMIT $2 OFFSET $3",
        live,
        limit,
        offset,
        streamer_id
    )
    .fetch_all(db)
    .await
}

/// How many streams [`list`] pages through with the same filters.
pub(crate) async fn count(
    db: impl PgExecutor<'_>,
    live: Option<bool>,
    streamer_id: Option<Uuid>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM streams
         WHERE ($1::bool IS NULL OR is_active = $1) AND ($2::uuid IS NULL OR streamer_id = $2)"#,
        live,
        streamer_id
    )
    .fetch_one(db)
    .await
}

/// Sets the title and/or the description (each left as is when `None`).
pub(crate) async fn update_text(
    db: impl PgExecutor<'_>,
    id: Uuid,
    title: Option<&str>,
    description: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE streams SET title = COALESCE($2, title), description = COALESCE($3, description)
         WHERE id = $1",
        id,
        title,
        description
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Whether the stream exists.
pub(crate) async fn exists(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM streams WHERE id = $1) AS "exists!""#,
        id
    )
    .fetch_one(db)
    .await
}

/// The streamer's live stream (the most recently started if several), if one is.
pub(crate) async fn live_stream_of(
    db: impl PgExecutor<'_>,
    streamer_id: Uuid,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM streams WHERE streamer_id = $1 AND is_active ORDER BY started_at DESC NULLS LAST LIMIT 1",
        streamer_id
    )
    .fetch_optional(db)
    .await
}

/// The ids of the user's live streams.
pub(crate) async fn live_streams_of(
    db: impl PgExecutor<'_>,
    streamer_id: Uuid,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM streams WHERE streamer_id = $1 AND is_active",
        streamer_id
    )
    .fetch_all(db)
    .await
}

/// The streamer's newest stream that has not ended, if any (the one a publish goes live on).
pub(crate) async fn open_stream_of(
    db: impl PgExecutor<'_>,
    streamer_id: Uuid,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM streams WHERE streamer_id = $1 AND ended_at IS NULL
         ORDER BY created_at DESC LIMIT 1",
        streamer_id
    )
    .fetch_optional(db)
    .await
}

/// Whether the user's account is active (`None`: no such user), locking the user's row
/// (`FOR UPDATE`) to the end of the transaction.
pub(crate) async fn lock_user_active(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar!(
        "SELECT is_active FROM users WHERE id = $1 FOR UPDATE",
        user_id
    )
    .fetch_optional(db)
    .await
}

/// Marks a stream that has not ended live (`started_at = now()`); its start time, or `None`
/// when it has ended (or does not exist).
pub(crate) async fn set_live(
    db: impl PgExecutor<'_>,
    id: Uuid,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar!(
        "UPDATE streams SET is_active = true, started_at = now(), ended_at = NULL
         WHERE id = $1 AND ended_at IS NULL RETURNING started_at",
        id
    )
    .fetch_optional(db)
    .await?
    .flatten())
}

/// Marks a live stream ended (`ended_at = now()`); its end time, or `None` when it was not
/// live.
pub(crate) async fn set_ended(
    db: impl PgExecutor<'_>,
    id: Uuid,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar!(
        "UPDATE streams SET is_active = false, ended_at = now()
         WHERE id = $1 AND is_active RETURNING ended_at",
        id
    )
    .fetch_optional(db)
    .await?
    .flatten())
}

/// Forgets the stream's ingest heartbeat.
pub(crate) async fn clear_heartbeat(db: impl PgExecutor<'_>, stream_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM stream_ingests WHERE stream_id = $1", stream_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Touches the ingest heartbeat of those of `publishing` that are live, and returns those of
/// them that have ended or do not exist.
pub(crate) async fn heartbeat(
    db: impl PgExecutor<'_>,
    publishing: &[Uuid],
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        r#"WITH mine AS (SELECT id, is_active, ended_at FROM streams WHERE id = ANY($1)),
         beat AS (
             INSERT INTO stream_ingests (stream_id) SELECT id FROM mine WHERE is_active
             ON CONFLICT (stream_id) DO UPDATE SET seen_at = now()
         )
         SELECT p.id AS "id!" FROM unnest($1::uuid[]) AS p (id) LEFT JOIN mine m ON m.id = p.id
         WHERE m.id IS NULL OR m.ended_at IS NOT NULL"#,
        publishing
    )
    .fetch_all(db)
    .await
}

/// Ends the live streams that no process has fed for `stale_secs` seconds, clearing their
/// heartbeats; returns each one's id and end time.
pub(crate) async fn end_orphans(
    db: impl PgExecutor<'_>,
    stale_secs: f64,
) -> sqlx::Result<Vec<(Uuid, DateTime<Utc>)>> {
    let rows = sqlx::query!(
        r#"WITH gone AS (
             UPDATE streams s SET is_active = false, ended_at = now()
             WHERE s.is_active
               AND coalesce(s.started_at, s.updated_at) < now() - make_interval(secs => $1)
               AND NOT EXISTS (
                   SELECT 1 FROM stream_ingests i
                   WHERE i.stream_id = s.id AND i.seen_at >= now() - make_interval(secs => $1))
             RETURNING s.id, s.ended_at
         ),
         cleared AS (DELETE FROM stream_ingests WHERE stream_id IN (SELECT id FROM gone))
         SELECT id AS "id!", ended_at AS "ended_at!" FROM gone"#,
        stale_secs
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.ended_at)).collect())
}

/// The end time (`None` while not ended) of each of `ids` that exists.
pub(crate) async fn ended_at_of(
    db: impl PgExecutor<'_>,
    ids: &[Uuid],
) -> sqlx::Result<Vec<(Uuid, Option<DateTime<Utc>>)>> {
    let rows = sqlx::query!("SELECT id, ended_at FROM streams WHERE id = ANY($1)", ids)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.ended_at)).collect())
}

/// Stores the user's stream key, replacing any earlier one; returns when it was made.
pub(crate) async fn save_key(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    selector: &str,
    secret_hash: &[u8],
) -> sqlx::Result<DateTime<Utc>> {
    sqlx::query_scalar!(
        "INSERT INTO stream_keys (user_id, selector, secret_hash) VALUES ($1, $2, $3)
         ON CONFLICT (user_id) DO UPDATE
           SET selector = EXCLUDED.selector, secret_hash = EXCLUDED.secret_hash, created_at = now()
         RETURNING created_at",
        user_id,
        selector,
        secret_hash
    )
    .fetch_one(db)
    .await
}

/// The owner and the secret's hash of the key with this selector, if any.
pub(crate) async fn key_by_selector(
    db: impl PgExecutor<'_>,
    selector: &str,
) -> sqlx::Result<Option<(Uuid, Vec<u8>)>> {
    let row = sqlx::query!(
        "SELECT user_id, secret_hash FROM stream_keys WHERE selector = $1",
        selector
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.user_id, r.secret_hash)))
}

/// The selector of the user's key and when it was made, if they have one.
pub(crate) async fn key_of(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
) -> sqlx::Result<Option<(String, DateTime<Utc>)>> {
    let row = sqlx::query!(
        "SELECT selector, created_at FROM stream_keys WHERE user_id = $1",
        user_id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.selector, r.created_at)))
}
