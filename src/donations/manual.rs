//! The streamer confirms or rejects a bank transfer they did (or did not) receive.
//!
//! Both are idempotent (confirming a confirmed donation answers it again, unchanged) and safe
//! under concurrent clicks: the row lock makes the second click see the first one's result.

use axum::body::Bytes;
use axum::extract::State;
use chrono::Utc;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::model::{DonationStatus, DonationView};
use super::service::{self, Source};
use super::views;
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, FieldError, Problem};
use crate::http::extract::{Json, Path, parse_json};
use crate::state::AppState;

const REASON_MAX_CHARS: usize = 500;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectDonation {
    /// Told to the donor. At most 500 characters.
    #[schema(example = "No transfer with this reference arrived.")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Confirm,
    Reject,
}

async fn decide(
    state: &AppState,
    user_id: Uuid,
    id: Uuid,
    decision: Decision,
    reason: &str,
) -> AppResult<DonationView> {
    let mut tx = state.db.begin().await?;
    let Some(donation) = service::lock(&mut tx, id).await? else {
        return Err(AppError::not_found("Donation"));
    };
    let streamer_id: Uuid = sqlx::query_scalar("SELECT streamer_id FROM streams WHERE id = $1")
        .bind(donation.stream_id)
        .fetch_one(&mut *tx)
        .await?;
    if streamer_id != user_id {
        return Err(AppError::forbidden(
            "Only the streamer who received this donation can confirm or reject it.",
        ));
    }
    if !donation.is_bank_transfer() {
        return Err(AppError::conflict(
            "not_bank_transfer",
            "Only bank transfers are confirmed by hand; Midtrans payments confirm themselves.",
        ));
    }
    let target = match decision {
        Decision::Confirm => DonationStatus::Completed,
        Decision::Reject => DonationStatus::Rejected,
    };
    let current = donation.status();
    if current == target {
        // The same click again (or the other of two concurrent clicks): answer, change nothing.
        tx.commit().await?;
        return Ok(views::one(state, &donation, false).await?);
    }
    if donation.is_overdue(Utc::now()) {
        let expired = service::move_to(
            &mut tx,
            &donation,
            DonationStatus::Expired,
            Source::Expiry,
            "Not confirmed in time.",
        )
        .await?;
        tx.commit().await?;
        if let Some((_, outbox)) = expired {
            service::dispatch(state, &outbox).await;
        }
        return Err(expired_conflict());
    }
    match current {
        DonationStatus::Pending => {}
        DonationStatus::Expired => return Err(expired_conflict()),
        other => {
            return Err(AppError::conflict(
                "donation_not_pending",
                format!("This donation is already {}.", other.as_str()),
            ));
        }
    }
    let changed = service::move_to(&mut tx, &donation, target, Source::Streamer, reason).await?;
    tx.commit().await?;
    let Some((updated, outbox)) = changed else {
        return Err(AppError::conflict(
            "donation_not_pending",
            "This donation can no longer change.",
        ));
    };
    service::dispatch(state, &outbox).await;
    Ok(views::one(state, &updated, false).await?)
}

fn expired_conflict() -> AppError {
    AppError::conflict(
        "donation_expired",
        "This bank transfer expired before it was confirmed.",
    )
}

/// Confirms that a bank transfer arrived: the donation completes (live alert and emails, once).
#[utoipa::path(post, path = "/api/donations/{id}/confirm", tag = "donations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The donation")),
    responses(
        (status = 200, description = "Completed (also when it already was)", body = DonationView),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not the streamer of this donation's stream", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "No such donation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`not_bank_transfer`, `donation_expired` or `donation_not_pending`", body = Problem,
            content_type = "application/problem+json"),
))]
pub(super) async fn confirm(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<Json<DonationView>> {
    decide(&state, user.id, id, Decision::Confirm, "")
        .await
        .map(Json)
}

/// Rejects a bank transfer that did not arrive; the donor is told by email.
#[utoipa::path(post, path = "/api/donations/{id}/reject", tag = "donations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The donation")),
    request_body(content = RejectDonation, description = "Optional; an empty body is fine"),
    responses(
        (status = 200, description = "Rejected (also when it already was)", body = DonationView),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not the streamer of this donation's stream", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "No such donation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`not_bank_transfer`, `donation_expired` or `donation_not_pending`", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "Reason too long", body = Problem, content_type = "application/problem+json"),
))]
pub(super) async fn reject(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<Uuid>,
    body: Bytes,
) -> AppResult<Json<DonationView>> {
    let body: RejectDonation = if body.iter().all(u8::is_ascii_whitespace) {
        RejectDonation::default()
    } else {
        parse_json(&body)?
    };
    let reason = body.reason.map(|r| r.trim().to_owned()).unwrap_or_default();
    if reason.chars().count() > REASON_MAX_CHARS {
        return Err(FieldError::new(
            "reason",
            "too_long",
            format!("The reason can be at most {REASON_MAX_CHARS} characters."),
        )
        .into());
    }
    decide(&state, user.id, id, Decision::Reject, &reason)
        .await
        .map(Json)
}
