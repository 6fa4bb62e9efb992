//! What a comment is, apart from how it is posted or served: the comment as the API and
//! `comment.created` show it, and comment text that passed its checks.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::FieldError;
use crate::live::events::CommentCreated;
use crate::users::model::PublicUser;

/// A comment as the API shows it (and as `comment.created` carries it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Comment {
    pub id: Uuid,
    pub stream_id: Uuid,
    pub author: PublicUser,
    pub content: String,
    pub created_at: DateTime<Utc>,
}

impl From<Comment> for CommentCreated {
    fn from(c: Comment) -> Self {
        Self {
            id: c.id,
            stream_id: c.stream_id,
            author: c.author,
            content: c.content,
            created_at: c.created_at,
        }
    }
}

/// Longest comment, in characters after trimming.
pub const MAX_CHARS: usize = 500;

/// Comment text that is 1–500 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentContent(String);

impl CommentContent {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        // Invisible characters (bidi controls, zero-width) are dropped: see `crate::text`.
        let stripped = crate::text::strip_invisible(raw);
        let trimmed = stripped.trim();
        if crate::text::has_control(trimmed, true) {
            return Err(FieldError::new(
                "content",
                "invalid_characters",
                "Comments cannot contain control characters.",
            ));
        }
        if trimmed.is_empty() {
            return Err(FieldError::new(
                "content",
                "blank",
                "Write something first.",
            ));
        }
        if trimmed.chars().count() > MAX_CHARS {
            return Err(FieldError::new(
                "content",
                "too_long",
                format!("Comments are limited to {MAX_CHARS} characters."),
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
