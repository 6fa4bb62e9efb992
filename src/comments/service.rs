//! Posting, listing and deleting comments. The REST API and the stream socket's
//! `comment.create` both post through [`post`], so the rules are the same whichever way a
//! comment arrives.

use std::borrow::Cow;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::model::Comment;
use crate::error::{AppError, AppResult, ErrorCode, FieldError};
use crate::live::events::{CommentDeleted, EventData};
use crate::ratelimit::{Limit, RateLimiter};
use crate::state::AppState;
use crate::users::model::{PublicUser, User};

/// Comments one user may post (on any stream) per window.
pub const COMMENT_LIMIT: Limit = Limit::new(5, Duration::from_secs(10));
pub use super::model::{CommentContent, MAX_CHARS};

/// Posts a comment on a live stream: validates it, counts it against the author's rate limit,
/// stores it together with its `comment.created` event (through the stream's batching
/// [`super::writer::Writer`]), then announces the event.
pub async fn post(
    state: &AppState,
    author: &User,
    stream_id: Uuid,
    content: &str,
) -> AppResult<Comment> {
    let content = CommentContent::parse(content)?;
    let limiter = RateLimiter::new(state.redis.clone());
    if let Err(retry_after) = limiter
        .hit(&format!("comments:user:{}", author.id), COMMENT_LIMIT)
        .await
    {
        return Err(AppError::TooManyRequests {
            code: ErrorCode::CommentRateLimited,
            detail: Cow::Borrowed("You are commenting too fast; wait a few seconds."),
            retry_after,
        });
    }

    let author = PublicUser {
        id: author.id,
        username: author.username.clone(),
    };
    state.comments.write(stream_id, author, content).await
}

/// Deletes a comment; allowed to the stream's owner and to staff. Announces `comment.deleted`.
pub async fn delete(state: &AppState, user: &User, comment_id: Uuid) -> AppResult<()> {
    let mut tx = state.db.begin().await?;
    let Some((stream_id, streamer_id)) =
        super::db::lock_with_streamer(&mut *tx, comment_id).await?
    else {
        return Err(AppError::not_found("Comment"));
    };
    if streamer_id != user.id && !user.is_staff {
        return Err(AppError::forbidden(
            "Only the stream's owner or staff can delete this comment.",
        ));
    }
    super::db::delete(&mut *tx, comment_id).await?;
    let event = EventData::CommentDeleted(CommentDeleted { id: comment_id });
    let recorded = state.events.record(&mut tx, stream_id, event).await?;
    tx.commit().await?;
    state.events.announce(&recorded).await;
    tracing::info!(%comment_id, %stream_id, by = %user.id, "comment deleted");
    Ok(())
}

/// Where a page of comments ends: the last comment's time and id (newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    created_at: DateTime<Utc>,
    id: Uuid,
}

impl Cursor {
    /// Opaque to clients: base64url of `<microseconds>:<id>`.
    #[must_use]
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}:{}",
            self.created_at.timestamp_micros(),
            self.id
        ))
    }

    pub fn decode(raw: &str) -> Result<Self, FieldError> {
        let invalid = || {
            FieldError::new(
                "cursor",
                "invalid",
                "The cursor is not valid; use `next_cursor` from the previous page.",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (micros, id) = text.split_once(':').ok_or_else(invalid)?;
        let created_at = micros
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_micros)
            .ok_or_else(invalid)?;
        let id = id.parse().map_err(|_| invalid())?;
        Ok(Self { created_at, id })
    }
}

/// A page of a stream's comments, newest first, and the cursor of the next page if any.
/// `None` when the stream does not exist.
pub async fn list(
    state: &AppState,
    stream_id: Uuid,
    cursor: Option<Cursor>,
    limit: u32,
) -> AppResult<Option<(Vec<Comment>, Option<Cursor>)>> {
    let mut comments = super::db::page(
        &state.db,
        stream_id,
        cursor.map(|c| (c.created_at, c.id)),
        i64::from(limit) + 1,
    )
    .await?;
    if comments.is_empty()
        && cursor.is_none()
        && !crate::streams::db::exists(&state.db, stream_id).await?
    {
        return Ok(None);
    }
    let next = if comments.len() > limit as usize {
        comments.truncate(limit as usize);
        comments.last().map(|c| Cursor {
            created_at: c.created_at,
            id: c.id,
        })
    } else {
        None
    };
    Ok(Some((comments, next)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_trimmed_and_bounded() {
        assert_eq!(CommentContent::parse("  hi \n").unwrap().as_str(), "hi");
        assert_eq!(CommentContent::parse(" \n\t ").unwrap_err().code, "blank");
        let longest = "é".repeat(MAX_CHARS);
        assert!(CommentContent::parse(&format!("  {longest}  ")).is_ok());
        assert_eq!(
            CommentContent::parse(&format!("{longest}x"))
                .unwrap_err()
                .code,
            "too_long"
        );
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = Cursor {
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        assert!(Cursor::decode("not a cursor").is_err());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode("12:nope")).is_err());
    }
}
