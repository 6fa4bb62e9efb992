//! Streams: creating and editing them, listing what is live, stopping a broadcast, the
//! streamer's key and ingest address, and serving each stream's HLS.

pub(crate) mod db;
pub mod hls;
pub mod housekeeping;
pub mod keys;
pub mod lifecycle;
pub mod model;

use std::borrow::Cow;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, ErrorCode, FieldError, Problem};
use crate::http::extract::{Json, Path, Query};
use crate::http::pagination::{PageParams, Paginated};
use crate::state::AppState;
use crate::text;
use crate::users::model::User;
use keys::NewStreamKey;
use model::{Stream, StreamView};

pub use lifecycle::end_stream;

/// Title given to a stream created by publishing without one prepared.
pub const DEFAULT_TITLE: &str = "Live stream";
const MAX_TITLE: usize = 255;
const MAX_DESCRIPTION: usize = 5000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_stream, list_streams))
        .routes(routes!(get_stream, update_stream))
        .routes(routes!(stop_stream))
        .routes(routes!(rotate_stream_key))
        .routes(routes!(ingest_settings))
        .routes(routes!(hls::serve))
}

fn parse_title(raw: &str) -> Result<String, FieldError> {
    let title = raw.trim();
    match title.chars().count() {
        0 => Err(FieldError::new(
            "title",
            "required",
            "Give the stream a title.",
        )),
        n if n > MAX_TITLE => Err(FieldError::new(
            "title",
            "too_long",
            "The title must be at most 255 characters.",
        )),
        // Titles are shown in lists next to others': nothing that reorders or hides text.
        _ if text::has_control(title, false) || text::find_invisible(title).is_some() => {
            Err(FieldError::new(
                "title",
                "invalid_characters",
                "The title cannot contain control characters or invisible formatting characters.",
            ))
        }
        _ => Ok(title.to_owned()),
    }
}

fn parse_description(raw: &str) -> Result<String, FieldError> {
    // Often pasted from elsewhere: invisible characters are dropped rather than refused.
    let stripped = text::strip_invisible(raw);
    let description = stripped.trim();
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(FieldError::new(
            "description",
            "too_long",
            "The description must be at most 5000 characters.",
        ));
    }
    if text::has_control(description, true) {
        return Err(FieldError::new(
            "description",
            "invalid_characters",
            "The description cannot contain control characters.",
        ));
    }
    Ok(description.to_owned())
}

fn collect<A, B>(a: Result<A, FieldError>, b: Result<B, FieldError>) -> AppResult<(A, B)> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (a, b) => Err(AppError::Validation(
            [a.err(), b.err()].into_iter().flatten().collect(),
        )),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStream {
    #[schema(example = "Main bareng malam ini")]
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// Prepares a stream; it goes live when OBS publishes with the streamer's key.
///
/// Creating a stream makes the user a streamer.
#[utoipa::path(post, path = "/api/streams", tag = "streams", security(("bearer" = [])),
    request_body = CreateStream, responses(
        (status = 201, description = "The stream", body = StreamView),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
))]
async fn create_stream(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Json(body): Json<CreateStream>,
) -> AppResult<(StatusCode, Json<StreamView>)> {
    let (title, description) = collect(
        parse_title(&body.title),
        parse_description(body.description.as_deref().unwrap_or_default()),
    )?;
    let mut tx = state.db.begin().await?;
    db::mark_streamer(&mut *tx, user.id).await?;
    let id = db::insert(&mut *tx, user.id, &title, &description).await?;
    let stream = Stream::find(&mut *tx, id)
        .await?
        .ok_or_else(|| AppError::not_found("Stream"))?;
    tx.commit().await?;
    tracing::info!(stream_id = %id, user_id = %user.id, "stream created");
    Ok((
        StatusCode::CREATED,
        Json(StreamView::one(&state, stream).await),
    ))
}

/// `?live=` and paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only live streams (`true`) or only streams that are not live (`false`).
    pub live: Option<bool>,
    /// Only this streamer's streams (the dashboard finds the streamer's own with it).
    pub streamer_id: Option<Uuid>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

/// Lists streams, live ones first (most recently started first), then the newest.
#[utoipa::path(get, path = "/api/streams", tag = "streams", responses(
    (status = 200, description = "One page of streams", body = Paginated<StreamView>),
    (status = 422, description = "Invalid paging", body = Problem, content_type = "application/problem+json"),
))]
async fn list_streams(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> AppResult<Json<Paginated<StreamView>>> {
    let page = PageParams {
        page: params.page,
        per_page: params.per_page,
    }
    .resolve()?;
    let streams = db::list(
        &state.db,
        params.live,
        params.streamer_id,
        page.limit(),
        page.offset(),
    )
    .await?;
    let total = db::count(&state.db, params.live, params.streamer_id).await?;
    Ok(Json(
        page.wrap(StreamView::many(&state, streams).await, total),
    ))
}

async fn find_stream(state: &AppState, id: Uuid) -> AppResult<Stream> {
    Stream::find(&state.db, id)
        .await?
        .ok_or_else(|| AppError::not_found("Stream"))
}

/// The stream, if `user` owns it: 404 when there is none, 403 when it is someone else's.
async fn owned_stream(state: &AppState, id: Uuid, user: &User) -> AppResult<Stream> {
    let stream = find_stream(state, id).await?;
    if stream.streamer_id == user.id {
        Ok(stream)
    } else {
        Err(AppError::forbidden("Only the stream's owner can do this."))
    }
}

/// One stream.
#[utoipa::path(get, path = "/api/streams/{id}", tag = "streams", params(("id" = Uuid, Path)), responses(
    (status = 200, description = "The stream", body = StreamView),
    (status = 404, description = "No such stream", body = Problem, content_type = "application/problem+json"),
))]
async fn get_stream(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> AppResult<Json<StreamView>> {
    let stream = find_stream(&state, id).await?;
    Ok(Json(StreamView::one(&state, stream).await))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateStream {
    pub title: Option<String>,
    pub description: Option<String>,
}

/// Changes a stream's title or description (its owner only).
#[utoipa::path(patch, path = "/api/streams/{id}", tag = "streams", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = UpdateStream, responses(
        (status = 200, description = "The updated stream", body = StreamView),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such stream", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
))]
async fn update_stream(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateStream>,
) -> AppResult<Json<StreamView>> {
    owned_stream(&state, id, &user).await?;
    let (title, description) = collect(
        body.title.as_deref().map(parse_title).transpose(),
        body.description
            .as_deref()
            .map(parse_description)
            .transpose(),
    )?;
    db::update_text(&state.db, id, title.as_deref(), description.as_deref()).await?;
    let stream = find_stream(&state, id).await?;
    Ok(Json(StreamView::one(&state, stream).await))
}

/// Ends a live stream: disconnects the publisher and marks the stream ended (its owner only).
///
/// Publishing again with the same key starts a new stream.
#[utoipa::path(post, path = "/api/streams/{id}/stop", tag = "streams", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses(
        (status = 200, description = "The ended stream", body = StreamView),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such stream", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`stream_not_live`", body = Problem, content_type = "application/problem+json"),
))]
async fn stop_stream(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<Json<StreamView>> {
    owned_stream(&state, id, &user).await?;
    if end_stream(&state, id).await?.is_none() {
        return Err(AppError::conflict(
            ErrorCode::StreamNotLive,
            "The stream is not live.",
        ));
    }
    let stream = find_stream(&state, id).await?;
    Ok(Json(StreamView::one(&state, stream).await))
}

/// Where and how to publish.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestSettings {
    /// The server URL to paste into OBS.
    #[schema(example = "rtmp://localhost/live")]
    pub ingest_url: String,
    /// The key, masked; `null` until one is created.
    #[schema(example = "sk_1a2b…")]
    pub masked_key: Option<String>,
    pub key_created_at: Option<DateTime<Utc>>,
}

/// A new stream key, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamKeyCreated {
    #[schema(example = "rtmp://localhost/live")]
    pub ingest_url: String,
    /// The secret key. It is not shown again; rotate to get a new one.
    pub stream_key: String,
    pub masked_key: String,
    pub key_created_at: DateTime<Utc>,
}

/// Creates the signed-in user's stream key, or replaces it.
///
/// The key is returned once. Replacing a key disconnects a publisher still using the old one
/// and ends its stream. Having a key makes the user a streamer.
#[utoipa::path(post, path = "/api/users/me/stream-key", tag = "streams", security(("bearer" = [])), responses(
    (status = 201, description = "The new key", body = StreamKeyCreated),
    (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
))]
async fn rotate_stream_key(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> AppResult<(StatusCode, Json<StreamKeyCreated>)> {
    let key = NewStreamKey::generate();
    let mut tx = state.db.begin().await?;
    let created_at = key.save(&mut *tx, user.id).await?;
    db::mark_streamer(&mut *tx, user.id).await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, "stream key rotated");
    // The old key no longer opens anything; whoever publishes with it is shown the door.
    lifecycle::end_streams_of(&state, user.id).await?;
    let masked_key = keys::current(&state.db, user.id)
        .await?
        .map(|(masked, _)| masked)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("stream key vanished after saving")))?;
    Ok((
        StatusCode::CREATED,
        Json(StreamKeyCreated {
            ingest_url: state.config.rtmp_ingest_url(),
            stream_key: key.key.clone(),
            masked_key,
            key_created_at: created_at,
        }),
    ))
}

/// The ingest URL and the masked stream key of the signed-in user.
#[utoipa::path(get, path = "/api/users/me/ingest", tag = "streams", security(("bearer" = [])), responses(
    (status = 200, description = "Ingest settings", body = IngestSettings),
    (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
))]
async fn ingest_settings(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> AppResult<Json<IngestSettings>> {
    let current = keys::current(&state.db, user.id).await?;
    Ok(Json(IngestSettings {
        ingest_url: state.config.rtmp_ingest_url(),
        key_created_at: current.as_ref().map(|c| c.1),
        masked_key: current.map(|c| c.0),
    }))
}

/// The not-found answer for streams, shared with HLS serving.
pub(crate) fn stream_not_found() -> AppError {
    AppError::NotFound {
        code: ErrorCode::NotFound,
        detail: Cow::Borrowed("Stream not found."),
    }
}
