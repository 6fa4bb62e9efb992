//! Live comments on streams: listing (newest first, by cursor), posting while the stream is
//! live, and deletion by the stream's owner or staff. Posting and deleting publish
//! `comment.created` / `comment.deleted` on the stream's socket.

pub(crate) mod db;
pub mod model;
pub mod service;
pub mod writer;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, Problem};
use crate::http::extract::{Json, Path, Query};
use crate::http::pagination::CursorPage;
use crate::state::AppState;
pub use model::Comment;
use service::Cursor;
pub use service::post;

/// Comments per page unless `limit` says otherwise.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 100;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_comments, create_comment))
        .routes(routes!(delete_comment))
}

// Derived by path: utoipa names `utoipa::IntoParams` in code spanned at the handler argument,
// which an imported `IntoParams` would make an unnecessary qualification.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `next_cursor` from the previous page; absent for the newest comments.
    cursor: Option<String>,
    /// Comments per page (1–100).
    #[param(minimum = 1, maximum = 100, default = 50)]
    limit: Option<u32>,
}

/// A stream's comments, newest first.
#[utoipa::path(get, path = "/api/streams/{id}/comments", tag = "comments",
    params(("id" = Uuid, Path, description = "The stream"), ListParams),
    responses(
        (status = 200, description = "One page of comments", body = CursorPage<Comment>),
        (status = 404, description = "No such stream", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid cursor or limit", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_comments(
    State(state): State<AppState>,
    Path(stream_id): Path<Uuid>,
    Query(params): Query<ListParams>,
) -> AppResult<Json<CursorPage<Comment>>> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AppError::invalid(
            "limit",
            "out_of_range",
            "limit must be between 1 and 100.",
        ));
    }
    let cursor = params.cursor.as_deref().map(Cursor::decode).transpose()?;
    let (items, next) = service::list(&state, stream_id, cursor, limit)
        .await?
        .ok_or_else(|| AppError::not_found("Stream"))?;
    Ok(Json(CursorPage {
        items,
        next_cursor: next.map(|c| c.encode()),
    }))
}

/// What a new comment says.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    /// 1–500 characters after trimming.
    #[schema(example = "Halo semua!")]
    pub content: String,
}

/// Posts a comment on a live stream.
///
/// It is announced on the stream's socket as `comment.created`. Each user may post 5 comments
/// per 10 seconds.
#[utoipa::path(post, path = "/api/streams/{id}/comments", tag = "comments",
    security(("bearer" = [])), request_body = NewComment,
    params(("id" = Uuid, Path, description = "The stream")),
    responses(
        (status = 201, description = "Posted", body = Comment),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such stream", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The stream is not live (`stream_not_live`)", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "Empty or longer than 500 characters", body = Problem,
            content_type = "application/problem+json"),
        (status = 429, description = "Too many comments (`comment_rate_limited`), with `Retry-After`", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn create_comment(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(stream_id): Path<Uuid>,
    Json(body): Json<NewComment>,
) -> AppResult<impl IntoResponse> {
    let comment = post(&state, &user, stream_id, &body.content).await?;
    Ok((StatusCode::CREATED, Json(comment)))
}

/// Deletes a comment (the stream's owner or staff).
///
/// Announced on the stream's socket as `comment.deleted`.
#[utoipa::path(delete, path = "/api/comments/{comment_id}", tag = "comments",
    security(("bearer" = [])),
    params(("comment_id" = Uuid, Path, description = "The comment")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not the stream's owner or staff", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "No such comment", body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_comment(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(comment_id): Path<Uuid>,
) -> AppResult<StatusCode> {
    service::delete(&state, &user, comment_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
