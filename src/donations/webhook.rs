//! `POST /api/payments/midtrans/notification`: Midtrans' HTTP notification.
//!
//! A notification is only a hint that something changed: its `transaction_status` and
//! `fraud_status` are not covered by the signature and it carries no nonce, so a captured one can
//! be replayed or edited. This endpoint therefore only checks the signature (constant time),
//! stores the body verbatim and queues its processing, which asks Midtrans' status endpoint and
//! acts on that answer. It answers at once; the work happens in a job. A body received before is
//! acknowledged again without a new job, and one status answer settles every notification of
//! the donation that came before it (see [`super::jobs::process_notification`]), so replaying a
//! notification does not multiply the calls to Midtrans.

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::db;
use super::jobs::DonationJob;
use crate::error::{AppError, AppResult, ErrorCode, Problem};
use crate::http::extract::Json;
use crate::state::AppState;

/// The fields the signature covers, plus the status for the log. Everything else is ignored.
#[derive(Debug, Deserialize)]
struct Signed {
    #[serde(default)]
    order_id: Option<String>,
    #[serde(default)]
    status_code: Option<String>,
    #[serde(default)]
    gross_amount: Option<String>,
    #[serde(default)]
    signature_key: Option<String>,
    #[serde(default)]
    transaction_status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationReceipt {
    /// Always `true`: stored and queued.
    pub received: bool,
    pub notification_id: Uuid,
}

fn bad_signature() -> AppError {
    AppError::Unauthorized {
        code: ErrorCode::InvalidSignature,
        detail: Cow::Borrowed("The notification's signature_key does not match."),
    }
}

/// Receives a Midtrans HTTP notification.
///
/// 401 `invalid_signature` when `signature_key` is not
/// `SHA512(order_id + status_code + gross_amount + server key)` (nothing is stored or changed);
/// 404 `unknown_order` for an order id that is not a donation (so Midtrans retries, in case it
/// arrived before the donation was written).
#[utoipa::path(post, path = "/api/payments/midtrans/notification", tag = "donations",
    request_body(content = serde_json::Value, description = "Midtrans' notification JSON (all values strings)"),
    responses(
        (status = 200, description = "Stored and queued", body = NotificationReceipt),
        (status = 400, description = "Not JSON, or no order id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_signature`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`unknown_order`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`payments_not_configured`: no server key to verify with", body = Problem,
            content_type = "application/problem+json"),
))]
pub(super) async fn notification(
    State(state): State<AppState>,
    body: Bytes,
) -> AppResult<Json<NotificationReceipt>> {
    let Some(midtrans) = state.midtrans.as_ref() else {
        return Err(AppError::Unavailable(anyhow::anyhow!(
            "a Midtrans notification arrived but MIDTRANS_SERVER_KEY is not set"
        )));
    };
    let signed: Signed = serde_json::from_slice(&body).map_err(|_| AppError::BadRequest {
        status: axum::http::StatusCode::BAD_REQUEST,
        code: ErrorCode::MalformedJson,
        detail: Cow::Borrowed("The notification is not a JSON object of strings."),
    })?;
    let (Some(order_id), Some(status_code), Some(gross_amount), Some(signature_key)) = (
        signed.order_id.as_deref(),
        signed.status_code.as_deref(),
        signed.gross_amount.as_deref(),
        signed.signature_key.as_deref(),
    ) else {
        return Err(bad_signature());
    };
    if !midtrans.verify_signature(order_id, status_code, gross_amount, signature_key) {
        tracing::warn!(
            order_id,
            "Midtrans notification with a wrong signature refused"
        );
        return Err(bad_signature());
    }
    let donation_id: Option<Uuid> = match Uuid::parse_str(order_id) {
        Ok(transaction_id) => db::donation_id_by_transaction(&state.db, transaction_id).await?,
        Err(_) => None,
    };
    let Some(donation_id) = donation_id else {
        tracing::warn!(order_id, "Midtrans notification for an unknown order");
        return Err(AppError::NotFound {
            code: ErrorCode::UnknownOrder,
            detail: Cow::Borrowed("No donation has this order id."),
        });
    };
    // The same body again (Midtrans retrying, or someone replaying a captured one) is the same
    // notification: acknowledged with its id, nothing queued twice.
    let digest = Sha256::digest(&body).to_vec();
    let inserted = db::insert_notification(
        &state.db,
        donation_id,
        order_id,
        signed.transaction_status.as_deref().unwrap_or_default(),
        String::from_utf8_lossy(&body).as_ref(),
        &digest,
    )
    .await?;
    let Some(notification_id) = inserted else {
        let notification_id = db::notification_id_by_body(&state.db, &digest).await?;
        tracing::info!(order_id, %notification_id, "Midtrans notification received again; already stored");
        return Ok(Json(NotificationReceipt {
            received: true,
            notification_id,
        }));
    };
    if let Err(e) = state
        .jobs
        .enqueue(DonationJob::ProcessNotification { notification_id })
        .await
    {
        // Stored is what matters: reconciliation queues unprocessed notifications later.
        tracing::warn!(%notification_id, cause = %e, "could not queue a notification; reconciliation will");
    }
    tracing::info!(order_id, %notification_id, transaction_status = signed.transaction_status.as_deref().unwrap_or_default(), "Midtrans notification received");
    Ok(Json(NotificationReceipt {
        received: true,
        notification_id,
    }))
}
