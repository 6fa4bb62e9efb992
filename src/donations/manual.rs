//! The streamer confirms or rejects a bank transfer they did (or did not) receive.
//!
//! Both are idempotent (confirming a confirmed donation answers it again, unchanged) and safe
//! under concurrent clicks: the row lock makes the second click see the first one's result.
//!
//! A transfer that arrives after its expiry is still money received: the streamer records it
//! with `{"late": true}`, its own transition (`expired → completed`, kept in the history), and
//! the alert and emails follow as for any confirmation. Without `late` an expired transfer is
//! refused, so a stale page cannot confirm one by accident.

use axum::body::Bytes;
use axum::extract::State;
use chrono::Utc;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::db;
use super::model::{DonationStatus, DonationView};
use super::service::{self, Source};
use super::views;
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, ErrorCode, FieldError, Problem};
use crate::http::extract::{Json, Path, parse_json};
use crate::services::Services;
use crate::users::model::User;

const REASON_MAX_CHARS: usize = 500;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectDonation {
    /// Told to the donor. At most 500 characters.
    #[schema(example = "No transfer with this reference arrived.")]
    pub reason: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmDonation {
    /// The transfer arrived after the donation expired: record it anyway.
    #[serde(default)]
    pub late: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Confirm { late: bool },
    Reject,
}

/// A JSON body, or its default when the body is empty.
fn optional_body<T: Default + serde::de::DeserializeOwned>(body: &Bytes) -> AppResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse_json(body)
    }
}

async fn decide(
    state: &Services,
    user: &User,
    id: Uuid,
    decision: Decision,
    reason: &str,
) -> AppResult<DonationView> {
    let mut tx = state.db.begin().await?;
    let Some(donation) = service::lock(&mut tx, id).await? else {
        return Err(AppError::not_found("Donation"));
    };
    let streamer_id = db::stream_owner(&mut *tx, donation.stream_id).await?;
    if streamer_id != user.id {
        // Those who may see the donation learn why they cannot decide; for anyone else it does
        // not exist, as it does not for them on GET.
        return Err(if donation.donor_id == Some(user.id) || user.is_staff {
            AppError::forbidden(
                "Only the streamer who received this donation can confirm or reject it.",
            )
        } else {
            AppError::not_found("Donation")
        });
    }
    if !donation.is_bank_transfer() {
        return Err(AppError::conflict(
            ErrorCode::NotBankTransfer,
            "Only bank transfers are confirmed by hand; Midtrans payments confirm themselves.",
        ));
    }
    let target = match decision {
        Decision::Confirm { .. } => DonationStatus::Completed,
        Decision::Reject => DonationStatus::Rejected,
    };
    let late = matches!(decision, Decision::Confirm { late: true });
    let current = donation.status();
    if current == target {
        // The same click again (or the other of two concurrent clicks): answer, change nothing.
        tx.commit().await?;
        return Ok(views::one(&state.db, &donation, false).await?);
    }
    let mut donation = donation;
    let mut outbox = Vec::new();
    if donation.is_overdue(Utc::now()) {
        let expired = service::move_to(
            &mut tx,
            &donation,
            DonationStatus::Expired,
            Source::Expiry,
            "Not confirmed in time.",
        )
        .await?;
        if let Some((updated, effects)) = expired {
            donation = updated;
            outbox = effects;
        }
        if !late {
            tx.commit().await?;
            service::dispatch(state, &outbox).await;
            return Err(expired_conflict());
        }
    }
    let reason = if donation.status() == DonationStatus::Expired {
        "The transfer arrived after the expiry; confirmed late by the streamer."
    } else {
        reason
    };
    match donation.status() {
        DonationStatus::Pending => {}
        DonationStatus::Expired if late => {}
        DonationStatus::Expired => return Err(expired_conflict()),
        other => {
            return Err(AppError::conflict(
                ErrorCode::DonationNotPending,
                format!("This donation is already {}.", other.as_str()),
            ));
        }
    }
    let changed = service::move_to(&mut tx, &donation, target, Source::Streamer, reason).await?;
    tx.commit().await?;
    service::dispatch(state, &outbox).await;
    let Some((updated, outbox)) = changed else {
        return Err(AppError::conflict(
            ErrorCode::DonationNotPending,
            "This donation can no longer change.",
        ));
    };
    service::dispatch(state, &outbox).await;
    Ok(views::one(&state.db, &updated, false).await?)
}

fn expired_conflict() -> AppError {
    AppError::conflict(
        ErrorCode::DonationExpired,
        "This bank transfer expired before it was confirmed. If the money did arrive, confirm it with {\"late\": true}.",
    )
}

/// Confirms that a bank transfer arrived: the donation completes (live alert and emails, once).
///
/// An expired transfer that did arrive is confirmed with `{"late": true}` (`expired → completed`).
#[utoipa::path(post, path = "/api/donations/{id}/confirm", tag = "donations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The donation")),
    request_body(content = ConfirmDonation, description = "Optional; an empty body is fine"),
    responses(
        (status = 200, description = "Completed (also when it already was)", body = DonationView),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The donor or staff: only the streamer of this donation's stream decides", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "No such donation, or not yours to see", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`not_bank_transfer`, `donation_expired` (without `late`) or `donation_not_pending`", body = Problem,
            content_type = "application/problem+json"),
))]
pub(super) async fn confirm(
    State(services): State<Services>,
    AuthUser(user): AuthUser,
    Path(id): Path<Uuid>,
    body: Bytes,
) -> AppResult<Json<DonationView>> {
    let body: ConfirmDonation = optional_body(&body)?;
    decide(
        &services,
        &user,
        id,
        Decision::Confirm { late: body.late },
        "",
    )
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
        (status = 403, description = "The donor or staff: only the streamer of this donation's stream decides", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "No such donation, or not yours to see", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`not_bank_transfer`, `donation_expired` or `donation_not_pending`", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "Reason too long", body = Problem, content_type = "application/problem+json"),
))]
pub(super) async fn reject(
    State(services): State<Services>,
    AuthUser(user): AuthUser,
    Path(id): Path<Uuid>,
    body: Bytes,
) -> AppResult<Json<DonationView>> {
    let body: RejectDonation = optional_body(&body)?;
    let reason = body.reason.map(|r| r.trim().to_owned()).unwrap_or_default();
    if reason.chars().count() > REASON_MAX_CHARS {
        return Err(FieldError::new(
            "reason",
            "too_long",
            format!("The reason can be at most {REASON_MAX_CHARS} characters."),
        )
        .into());
    }
    decide(&services, &user, id, Decision::Reject, &reason)
        .await
        .map(Json)
}
