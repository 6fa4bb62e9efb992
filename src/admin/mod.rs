//! The staff console's API (`/api/admin/...`): what the project used to do in Django's admin.
//!
//! Every route takes a [`StaffUser`], so anyone else gets 401/403. Staff can find users and
//! deactivate or reactivate them (deactivation also ends every session), list streams and end a
//! live one, and search donations by status. Lists use page numbers with totals
//! ([`Paginated`]) because people browse them.

pub(crate) mod db;

use std::borrow::Cow;

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{StaffUser, refresh};
use crate::donations::model::{DonationStatus, PaymentMethod};
use crate::error::{AppError, AppResult, ErrorCode, Problem};
use crate::http::extract::{Json, Path, Query};
use crate::http::pagination::{PageParams, Paginated};
use crate::state::AppState;
use crate::streams::model::Stream;
use crate::users::model::{PublicUser, User, UserView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users))
        .routes(routes!(deactivate_user))
        .routes(routes!(reactivate_user))
        .routes(routes!(list_streams))
        .routes(routes!(end_stream))
        .routes(routes!(list_donations))
}

/// Turns a free-text search into an `ILIKE` pattern, with the wildcards people did not mean
/// escaped. `None` for an empty search (match everything).
fn like_pattern(q: Option<&str>) -> Option<String> {
    let q = q.map(str::trim).filter(|q| !q.is_empty())?;
    let escaped: String = q
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    Some(format!("%{escaped}%"))
}

// ---------------------------------------------------------------------------------------------
// Users

#[derive(Debug, Deserialize)]
pub struct UserSearch {
    /// Part of the username, email or name.
    pub q: Option<String>,
    /// Only active (`true`) or deactivated (`false`) accounts.
    pub is_active: Option<bool>,
    /// 1-based page number.
    pub page: Option<u32>,
    /// Items per page (1–100).
    pub per_page: Option<u32>,
}

/// Users, newest first, matching a search.
#[utoipa::path(get, path = "/api/admin/users", tag = "admin", security(("bearer" = [])),
    params(
        ("q" = Option<String>, Query, description = "Part of the username, email or name"),
        ("is_active" = Option<bool>, Query, description = "Only active (`true`) or deactivated (`false`) accounts"),
        ("page" = Option<u32>, Query, description = "1-based page number", minimum = 1),
        ("per_page" = Option<u32>, Query, description = "Items per page (1–100, default 20)", minimum = 1, maximum = 100),
    ),

    responses(
        (status = 200, description = "One page of users", body = Paginated<UserView>),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid page parameters", body = Problem, content_type = "application/problem+json"),
))]
async fn list_users(
    State(state): State<AppState>,
    StaffUser(_staff): StaffUser,
    Query(search): Query<UserSearch>,
) -> AppResult<Json<Paginated<UserView>>> {
    let page = PageParams {
        page: search.page,
        per_page: search.per_page,
    }
    .resolve()?;
    let pattern = like_pattern(search.q.as_deref());
    let total = db::count_users(&state.db, pattern.as_deref(), search.is_active).await?;
    let users = db::search_users(
        &state.db,
        pattern.as_deref(),
        search.is_active,
        page.limit(),
        page.offset(),
    )
    .await?;
    Ok(Json(page.wrap(
        users.into_iter().map(UserView::from).collect(),
        total,
    )))
}

/// Deactivates an account: it can no longer log in, its access tokens stop working at once and
/// every refresh token is revoked. A streamer's live stream ends (the publisher is disconnected,
/// by whichever process ingests it), their stream key is refused, donations to them are refused,
/// and their pending bank transfers expire (each donor is told by email not to pay). Idempotent.
#[utoipa::path(post, path = "/api/admin/users/{id}/deactivate", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user")),
    responses(
        (status = 200, description = "The deactivated account", body = UserView),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff, or the account is a superuser's and the caller is not one",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`cannot_deactivate_self`", body = Problem, content_type = "application/problem+json"),
))]
async fn deactivate_user(
    State(state): State<AppState>,
    StaffUser(staff): StaffUser,
    Path(id): Path<Uuid>,
) -> AppResult<Json<UserView>> {
    if id == staff.id {
        return Err(AppError::conflict(
            ErrorCode::CannotDeactivateSelf,
            "You cannot deactivate your own account.",
        ));
    }
    let mut tx = state.db.begin().await?;
    let target = db::lock_user(&mut *tx, id)
        .await?
        .ok_or_else(|| AppError::not_found("User"))?;
    if target.is_superuser && !staff.is_superuser {
        return Err(AppError::forbidden(
            "Only a superuser can deactivate a superuser.",
        ));
    }
    let user = db::deactivate_user(&mut *tx, id).await?;
    refresh::revoke_all_for_user(&mut *tx, id).await?;
    tx.commit().await?;
    // After the commit: a publish racing with this sees the account inactive and is refused,
    // so no stream can go live behind these ends.
    crate::streams::lifecycle::end_streams_of(&state, id).await?;
    crate::donations::service::expire_pending_transfers_to(&state.services(), id).await?;
    tracing::info!(user_id = %id, staff_id = %staff.id, "account deactivated by staff");
    state.live.close_overlays(id).await;
    Ok(Json(user.into()))
}

/// Lets a deactivated account log in again. Idempotent. Takes the same rights as deactivating:
/// only a superuser can reactivate a superuser.
#[utoipa::path(post, path = "/api/admin/users/{id}/reactivate", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user")),
    responses(
        (status = 200, description = "The reactivated account", body = UserView),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff, or the account is a superuser's and the caller is not one",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
))]
async fn reactivate_user(
    State(state): State<AppState>,
    StaffUser(staff): StaffUser,
    Path(id): Path<Uuid>,
) -> AppResult<Json<UserView>> {
    let user = db::reactivate_user(&state.db, id, staff.is_superuser).await?;
    let Some(user) = user else {
        return Err(match User::find(&state.db, id).await? {
            Some(_) => AppError::forbidden("Only a superuser can reactivate a superuser."),
            None => AppError::not_found("User"),
        });
    };
    tracing::info!(user_id = %id, staff_id = %staff.id, "account reactivated by staff");
    Ok(Json(user.into()))
}

// ---------------------------------------------------------------------------------------------
// Streams

#[derive(Debug, Deserialize)]
pub struct StreamSearch {
    /// Part of the title or the streamer's username.
    pub q: Option<String>,
    /// Only live (`true`) or not live (`false`) streams.
    pub live: Option<bool>,
    /// 1-based page number.
    pub page: Option<u32>,
    /// Items per page (1–100).
    pub per_page: Option<u32>,
}

/// A stream as staff see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminStream {
    pub id: Uuid,
    pub title: String,
    pub streamer: PublicUser,
    pub is_live: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<Stream> for AdminStream {
    fn from(s: Stream) -> Self {
        Self {
            id: s.id,
            title: s.title,
            streamer: PublicUser {
                id: s.streamer_id,
                username: s.streamer_username,
            },
            is_live: s.is_active,
            started_at: s.started_at,
            ended_at: s.ended_at,
            created_at: s.created_at,
        }
    }
}

/// Streams, live ones first, then newest.
#[utoipa::path(get, path = "/api/admin/streams", tag = "admin", security(("bearer" = [])),
    params(
        ("q" = Option<String>, Query, description = "Part of the title or the streamer's username"),
        ("live" = Option<bool>, Query, description = "Only live (`true`) or not live (`false`) streams"),
        ("page" = Option<u32>, Query, description = "1-based page number", minimum = 1),
        ("per_page" = Option<u32>, Query, description = "Items per page (1–100, default 20)", minimum = 1, maximum = 100),
    ),

    responses(
        (status = 200, description = "One page of streams", body = Paginated<AdminStream>),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid page parameters", body = Problem, content_type = "application/problem+json"),
))]
async fn list_streams(
    State(state): State<AppState>,
    StaffUser(_staff): StaffUser,
    Query(search): Query<StreamSearch>,
) -> AppResult<Json<Paginated<AdminStream>>> {
    let page = PageParams {
        page: search.page,
        per_page: search.per_page,
    }
    .resolve()?;
    let pattern = like_pattern(search.q.as_deref());
    let total = db::count_streams(&state.db, pattern.as_deref(), search.live).await?;
    let rows = db::search_streams(
        &state.db,
        pattern.as_deref(),
        search.live,
        page.limit(),
        page.offset(),
    )
    .await?;
    Ok(Json(page.wrap(
        rows.into_iter().map(AdminStream::from).collect(),
        total,
    )))
}

/// Ends a live stream: its publisher is disconnected and viewers see it end.
#[utoipa::path(post, path = "/api/admin/streams/{id}/end", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The stream")),
    responses(
        (status = 200, description = "The ended stream", body = AdminStream),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such stream", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`stream_not_live`", body = Problem, content_type = "application/problem+json"),
))]
async fn end_stream(
    State(state): State<AppState>,
    StaffUser(staff): StaffUser,
    Path(id): Path<Uuid>,
) -> AppResult<Json<AdminStream>> {
    find_stream(&state, id).await?;
    // The streams module's one way to end a stream: disconnects the publisher, marks the stream
    // ended and announces it, and says whether it was live — in one conditional update, so two
    // staff ending it at once get one 200 and one 409.
    if crate::streams::end_stream(&state, id).await?.is_none() {
        return Err(AppError::conflict(
            ErrorCode::StreamNotLive,
            "This stream is not live, so there is nothing to end.",
        ));
    }
    tracing::info!(stream_id = %id, staff_id = %staff.id, "stream ended by staff");
    Ok(Json(find_stream(&state, id).await?.into()))
}

async fn find_stream(state: &AppState, id: Uuid) -> AppResult<Stream> {
    Stream::find(&state.db, id)
        .await?
        .ok_or_else(|| AppError::not_found("Stream"))
}

// ---------------------------------------------------------------------------------------------
// Donations

#[derive(Debug, Deserialize)]
pub struct DonationSearch {
    /// Part of the donor's or streamer's username, the stream title or message, or the
    /// transaction id.
    pub q: Option<String>,
    /// One of `pending`, `completed`, `failed`, `expired`, `rejected`, `refunded`.
    pub status: Option<String>,
    /// 1-based page number.
    pub page: Option<u32>,
    /// Items per page (1–100).
    pub per_page: Option<u32>,
}

/// A donation as staff see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminDonation {
    pub id: Uuid,
    /// The payment gateway's order id.
    pub transaction_id: Uuid,
    pub stream_id: Uuid,
    pub stream_title: String,
    pub streamer: PublicUser,
    /// Absent when the donor's account was deleted.
    pub donor: Option<PublicUser>,
    /// Whole rupiah.
    pub amount: i64,
    pub message: String,
    pub payment_method: PaymentMethod,
    pub status: DonationStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A row of the staff's donation search ([`db::search_donations`]).
pub(crate) struct AdminDonationRow {
    id: Uuid,
    transaction_id: Uuid,
    stream_id: Uuid,
    stream_title: String,
    streamer_id: Uuid,
    streamer_username: String,
    donor_id: Option<Uuid>,
    donor_username: Option<String>,
    amount: i64,
    message: String,
    payment_method: PaymentMethod,
    status: DonationStatus,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<AdminDonationRow> for AdminDonation {
    fn from(r: AdminDonationRow) -> Self {
        Self {
            id: r.id,
            transaction_id: r.transaction_id,
            stream_id: r.stream_id,
            stream_title: r.stream_title,
            streamer: PublicUser {
                id: r.streamer_id,
                username: r.streamer_username,
            },
            donor: r
                .donor_id
                .zip(r.donor_username)
                .map(|(id, username)| PublicUser { id, username }),
            amount: r.amount,
            message: r.message,
            payment_method: r.payment_method,
            status: r.status,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Donations, newest first, matching a search and a status.
#[utoipa::path(get, path = "/api/admin/donations", tag = "admin", security(("bearer" = [])),
    params(
        ("q" = Option<String>, Query,
            description = "Part of the donor's or streamer's username, the stream title, the message or the order id"),
        ("status" = Option<String>, Query,
            description = "`pending`, `completed`, `failed`, `expired`, `rejected`, `refunded` or `partially_refunded`"),
        ("page" = Option<u32>, Query, description = "1-based page number", minimum = 1),
        ("per_page" = Option<u32>, Query, description = "Items per page (1–100, default 20)", minimum = 1, maximum = 100),
    ),

    responses(
        (status = 200, description = "One page of donations", body = Paginated<AdminDonation>),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown status or invalid page parameters", body = Problem,
            content_type = "application/problem+json"),
))]
async fn list_donations(
    State(state): State<AppState>,
    StaffUser(_staff): StaffUser,
    Query(search): Query<DonationSearch>,
) -> AppResult<Json<Paginated<AdminDonation>>> {
    let page = PageParams {
        page: search.page,
        per_page: search.per_page,
    }
    .resolve()?;
    let status = search
        .status
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let status = match status.map(|s| (s, DonationStatus::parse(s))) {
        None => None,
        Some((_, Some(status))) => Some(status),
        Some((unknown, None)) => {
            let known: Vec<&str> = DonationStatus::ALL.iter().map(|s| s.as_str()).collect();
            return Err(AppError::invalid(
                "status",
                "invalid_choice",
                Cow::Owned(format!(
                    "Unknown status `{unknown}`; use one of {}.",
                    known.join(", ")
                )),
            ));
        }
    };
    let pattern = like_pattern(search.q.as_deref());
    let total = db::count_donations(&state.db, pattern.as_deref(), status).await?;
    let rows = db::search_donations(
        &state.db,
        pattern.as_deref(),
        status,
        page.limit(),
        page.offset(),
    )
    .await?;
    Ok(Json(page.wrap(
        rows.into_iter().map(AdminDonation::from).collect(),
        total,
    )))
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn searches_match_anywhere_and_escape_wildcards() {
        assert_eq!(like_pattern(Some(" budi ")).as_deref(), Some("%budi%"));
        assert_eq!(
            like_pattern(Some("50%_off")).as_deref(),
            Some("%50\\%\\_off%")
        );
        assert_eq!(like_pattern(Some("   ")), None);
        assert_eq!(like_pattern(None), None);
    }
}
