//! The live feature's persistence: the event log (`live_events`, `live_event_seqs`) and overlay
//! tokens. Every query is checked at compile time. (Which streams exist or are live is asked of
//! [`crate::streams::db`], except by the event log itself, see [`streamer_of`].)

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::users::model::PublicUser;

/// An event as stored in the log.
pub(crate) struct StoredEvent {
    pub(crate) id: i64,
    pub(crate) kind: String,
    /// The event's `data` object as JSON text.
    pub(crate) data: String,
    pub(crate) ts: DateTime<Utc>,
}

/// Takes `count` ids from the stream's counter (locking its `live_event_seqs` row to the end of
/// the transaction) and stores the events under them, in order; returns the last id before
/// them.
pub(crate) async fn append_events(
    db: impl PgExecutor<'_>,
    stream_id: Uuid,
    count: i64,
    kinds: &[&str],
    data: &[String],
    ts: DateTime<Utc>,
) -> sqlx::Result<i64> {
    // The data-modifying CTE runs even though the outer query only reads `seq`.
    sqlx::query_scalar!(
        r#"WITH seq AS (
             INSERT INTO live_event_seqs AS s (stream_id, last_id) VALUES ($1, $2)
             ON CONFLICT (stream_id) DO UPDATE SET last_id = s.last_id + $2
             RETURNING last_id - $2 AS before
         ), stored AS (
             INSERT INTO live_events (stream_id, id, kind, data, ts)
             SELECT $1, seq.before + e.ord, e.kind, e.data, $5
             FROM seq, unnest($3::text[], $4::text[]) WITH ORDINALITY AS e(kind, data, ord)
         )
         SELECT before AS "before!" FROM seq"#,
        stream_id,
        count,
        kinds as &[&str],
        data,
        ts
    )
    .fetch_one(db)
    .await
}

/// The streamer of a stream, if it exists. (Asked here rather than of `streams::db`: the
/// streams feature publishes through the event log, which must not import it back.)
pub(crate) async fn streamer_of(
    db: impl PgExecutor<'_>,
    stream_id: Uuid,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!("SELECT streamer_id FROM streams WHERE id = $1", stream_id)
        .fetch_optional(db)
        .await
}

/// The id of the stream's latest event, if it has had any.
pub(crate) async fn last_event_id(
    db: impl PgExecutor<'_>,
    stream_id: Uuid,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!(
        "SELECT last_id FROM live_event_seqs WHERE stream_id = $1",
        stream_id
    )
    .fetch_optional(db)
    .await
}

/// Up to `limit` logged events with ids in `(after, up_to]`, oldest first, optionally of one
/// kind only.
pub(crate) async fn events_after(
    db: impl PgExecutor<'_>,
    stream_id: Uuid,
    after: i64,
    up_to: Option<i64>,
    kind: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<StoredEvent>> {
    sqlx::query_as!(
        StoredEvent,
        "SELECT id, kind, data, ts FROM live_events
         WHERE stream_id = $1 AND id > $2 AND ($3::bigint IS NULL OR id <= $3)
           AND ($4::text IS NULL OR kind = $4)
         ORDER BY id LIMIT $5",
        stream_id,
        after,
        up_to,
        kind,
        limit
    )
    .fetch_all(db)
    .await
}

/// The id of the oldest event still in the stream's log, if any.
pub(crate) async fn oldest_event_id(
    db: impl PgExecutor<'_>,
    stream_id: Uuid,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!(
        "SELECT min(id) FROM live_events WHERE stream_id = $1",
        stream_id
    )
    .fetch_one(db)
    .await
}

/// Deletes events older than `min_age_secs` beyond each stream's last `min_events`, and any
/// older than a day; returns how many.
pub(crate) async fn prune_events(
    db: impl PgExecutor<'_>,
    min_age_secs: f64,
    min_events: i64,
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "DELETE FROM live_events e USING live_event_seqs s
         WHERE e.stream_id = s.stream_id
           AND e.ts < now() - make_interval(secs => $1)
           AND (e.id <= s.last_id - $2 OR e.ts < now() - interval '1 day')",
        min_age_secs,
        min_events
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Stores the user's overlay token (its hash and hint), replacing any earlier one; returns
/// when it was made.
pub(crate) async fn save_overlay_token(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    token_hash: &[u8],
    hint: &str,
) -> sqlx::Result<DateTime<Utc>> {
    sqlx::query_scalar!(
        "INSERT INTO overlay_tokens (user_id, token_hash, hint) VALUES ($1, $2, $3)
         ON CONFLICT (user_id) DO UPDATE
             SET token_hash = EXCLUDED.token_hash, hint = EXCLUDED.hint, created_at = now()
         RETURNING created_at",
        user_id,
        token_hash,
        hint
    )
    .fetch_one(db)
    .await
}

/// The hint and creation time of the user's overlay token, if they have one.
pub(crate) async fn overlay_token_of(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
) -> sqlx::Result<Option<(String, DateTime<Utc>)>> {
    let row = sqlx::query!(
        "SELECT hint, created_at FROM overlay_tokens WHERE user_id = $1",
        user_id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.hint, r.created_at)))
}

/// The (active) streamer an overlay token belongs to.
pub(crate) async fn overlay_token_owner(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
) -> sqlx::Result<Option<PublicUser>> {
    sqlx::query_as!(
        PublicUser,
        "SELECT u.id, u.username FROM overlay_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = $1 AND u.is_active",
        token_hash
    )
    .fetch_optional(db)
    .await
}
