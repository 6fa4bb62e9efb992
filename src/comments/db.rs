//! The comments feature's persistence. Every query is checked at compile time. (Listing asks
//! [`crate::streams::db`] whether a stream exists; the writer asks [`stream_is_active`] here,
//! as the streams feature reaches the writer through `AppState` and must not be imported back.)

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use super::model::Comment;
use crate::users::model::PublicUser;

/// The stream a comment is on and that stream's streamer, if the comment exists; locks the
/// comment's row (`FOR UPDATE OF c`) to the end of the transaction.
pub(crate) async fn lock_with_streamer(
    db: impl PgExecutor<'_>,
    comment_id: Uuid,
) -> sqlx::Result<Option<(Uuid, Uuid)>> {
    let row = sqlx::query!(
        "SELECT c.stream_id, s.streamer_id FROM comments c JOIN streams s ON s.id = c.stream_id
         WHERE c.id = $1 FOR UPDATE OF c",
        comment_id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.stream_id, r.streamer_id)))
}

/// Whether the stream is live; `None` when there is no such stream.
pub(crate) async fn stream_is_active(
    db: impl PgExecutor<'_>,
    stream_id: Uuid,
) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar!("SELECT is_active FROM streams WHERE id = $1", stream_id)
        .fetch_optional(db)
        .await
}

/// Deletes a comment.
pub(crate) async fn delete(db: impl PgExecutor<'_>, comment_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM comments WHERE id = $1", comment_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Up to `limit` of a stream's comments with their authors, newest first, older than
/// `before` (a comment's time and id) when given.
pub(crate) async fn page(
    db: impl PgExecutor<'_>,
    stream_id: Uuid,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<Comment>> {
    let rows = sqlx::query!(
        "SELECT c.id, c.stream_id, c.content, c.created_at, u.id AS author_id, u.username AS author_username
         FROM comments c JOIN users u ON u.id = c.user_id
         WHERE c.stream_id = $1 AND ($2::timestamptz IS NULL OR (c.created_at, c.id) < ($2, $3))
         ORDER BY c.created_at DESC, c.id DESC
         LIMIT $4",
        stream_id,
        before.map(|b| b.0),
        before.map(|b| b.1),
        limit
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Comment {
            id: r.id,
            stream_id: r.stream_id,
            author: PublicUser {
                id: r.author_id,
                username: r.author_username,
            },
            content: r.content,
            created_at: r.created_at,
        })
        .collect())
}

/// Inserts the comments (ids, authors and contents side by side) in one statement if the
/// stream is live; returns the id and creation time of each stored one (none when the stream
/// is not live or does not exist).
pub(crate) async fn insert_batch(
    db: impl PgExecutor<'_>,
    stream_id: Uuid,
    ids: &[Uuid],
    authors: &[Uuid],
    contents: &[&str],
) -> sqlx::Result<Vec<(Uuid, DateTime<Utc>)>> {
    let rows = sqlx::query!(
        "INSERT INTO comments (id, stream_id, user_id, content)
         SELECT c.id, s.id, c.user_id, c.content
         FROM streams s, unnest($2::uuid[], $3::uuid[], $4::text[]) AS c(id, user_id, content)
         WHERE s.id = $1 AND s.is_active
         RETURNING id, created_at",
        stream_id,
        ids,
        authors,
        contents as &[&str]
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.created_at)).collect())
}
