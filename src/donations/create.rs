//! Donating: `POST /api/streams/{id}/donations`, and reading one donation back.

use std::borrow::Cow;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::db;
use super::model::{
    Amount, Donation, DonationStatus, DonationView, Message, NewDonation, PaymentMethod,
    new_reference_code,
};
use super::service::{self, Source};
use super::views;
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, ErrorCode, FieldError, Problem, constraint};
use crate::http::extract::{ClientIp, Json, Path};
use crate::payments::midtrans::{
    Callbacks, CustomerDetails, Expiry, ItemDetails, SnapRequest, TransactionDetails,
};
use crate::payments::{MidtransError, rupiah};
use crate::ratelimit::{RateLimiter, address_key};
use crate::state::AppState;

/// Times a fresh reference code is drawn when one collides.
const REFERENCE_ATTEMPTS: usize = 5;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDonation {
    /// Whole rupiah, at least the configured minimum (default 10,000).
    #[schema(example = 50000)]
    pub amount: i64,
    /// At most 255 characters; shown on stream.
    #[serde(default)]
    #[schema(example = "Semangat terus!")]
    pub message: Option<String>,
    pub payment_method: PaymentMethod,
    /// Hide the donor's name from everyone, the streamer included.
    #[serde(default)]
    pub anonymous: bool,
}

/// How to pay for a new donation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "provider", rename_all = "snake_case")]
pub enum Payment {
    /// Open Snap: load `snap_js_url` with `data-client-key = client_key`, then
    /// `snap.pay(snap_token, ...)` — or send the donor to `redirect_url`. Snap's callbacks are
    /// not proof of payment: the donation completes when Midtrans' status says so.
    Midtrans {
        snap_token: String,
        redirect_url: String,
        client_key: String,
        snap_js_url: String,
    },
    /// Transfer exactly `amount` to this account with `reference_code` in the note, before
    /// `expires_at`; the streamer confirms it.
    BankTransfer(TransferInstructions),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransferInstructions {
    pub bank_name: String,
    pub account_number: String,
    pub account_holder: String,
    /// Whole rupiah: transfer exactly this.
    pub amount: i64,
    #[schema(example = "SRN-7KQ4XP")]
    pub reference_code: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedDonation {
    pub donation: DonationView,
    pub payment: Payment,
}

fn stream_error(code: &'static str, message: &'static str) -> FieldError {
    FieldError::new("stream", code, message)
}

/// Donates to a live stream.
///
/// Every invalid input is reported as a field error (`amount`, `message`, `payment_method`,
/// `stream`: `not_found`, `not_live`, `own_stream`). Midtrans: the donation is stored `pending`
/// before Snap is asked for a token; if Midtrans is down or refuses, it becomes `failed` and the
/// answer is 502 `payment_provider_error`. Bank transfer: 409 `payout_details_missing` until
/// the streamer has set their bank account. At most `SIARAN_LIMIT_DONATION_ACCOUNT` (10 a
/// minute) per donor and `SIARAN_LIMIT_DONATION_ADDRESS` (30) per address: 429
/// `donation_rate_limited`.
#[utoipa::path(post, path = "/api/streams/{id}/donations", tag = "donations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The stream")),
    request_body = CreateDonation,
    responses(
        (status = 201, description = "Pending donation and how to pay it", body = CreatedDonation),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`payout_details_missing`: the streamer has no bank account set", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or a stream that does not exist, is not live or is yours", body = Problem,
            content_type = "application/problem+json"),
        (status = 429, description = "`donation_rate_limited`; see `Retry-After`", body = Problem,
            content_type = "application/problem+json"),
        (status = 502, description = "`payment_provider_error`: Midtrans is down or refused", body = Problem,
            content_type = "application/problem+json"),
))]
pub(super) async fn create_donation(
    State(state): State<AppState>,
    AuthUser(donor): AuthUser,
    ClientIp(ip): ClientIp,
    Path(stream_id): Path<Uuid>,
    Json(body): Json<CreateDonation>,
) -> AppResult<(StatusCode, Json<CreatedDonation>)> {
    let limits = &state.config.limits;
    let (account, address) = (
        format!("donations:user:{}", donor.id),
        format!("donations:ip:{}", address_key(ip)),
    );
    RateLimiter::new(state.redis.clone())
        .acquire(&[
            (&account, limits.donation_account),
            (&address, limits.donation_address),
        ])
        .await
        .map_err(|refused| AppError::TooManyRequests {
            code: ErrorCode::DonationRateLimited,
            detail: Cow::Borrowed("You are starting donations too fast; wait a minute."),
            retry_after: refused.retry_after,
        })?;
    let stream = db::donation_target(&state.db, stream_id).await?;
    let blocked = match &stream {
        Some(s) => db::blocked_words(&state.db, s.streamer_id).await?,
        None => Vec::new(),
    };
    let mut errors = Vec::new();
    let amount = Amount::parse(body.amount, &state.config.donations).map_err(|e| errors.push(e));
    let message = Message::parse(body.message.as_deref().unwrap_or_default(), &blocked)
        .map_err(|e| errors.push(e));
    match &stream {
        None => errors.push(stream_error("not_found", "This stream does not exist.")),
        Some(s) if s.streamer_id == donor.id => errors.push(stream_error(
            "own_stream",
            "You cannot donate to your own stream.",
        )),
        Some(s) if !s.is_active => errors.push(stream_error(
            "not_live",
            "Donations are open only while the stream is live.",
        )),
        Some(_) => {}
    }
    if body.payment_method == PaymentMethod::Midtrans && state.midtrans.is_none() {
        errors.push(FieldError::new(
            "payment_method",
            "unavailable",
            "Online payment is not set up on this server; choose bank transfer.",
        ));
    }
    let (Ok(amount), Ok(message), Some(stream), true) =
        (amount, message, stream, errors.is_empty())
    else {
        return Err(AppError::Validation(errors));
    };
    let new = NewDonation {
        stream_id,
        donor_id: donor.id,
        amount,
        message,
        anonymous: body.anonymous,
    };
    match body.payment_method {
        PaymentMethod::Midtrans => pay_with_midtrans(&state, &donor, new).await,
        PaymentMethod::BankTransfer => pay_by_transfer(&state, stream.streamer_id, new).await,
    }
    .map(|created| (StatusCode::CREATED, Json(created)))
}

async fn pay_with_midtrans(
    state: &AppState,
    donor: &crate::users::model::User,
    new: NewDonation,
) -> AppResult<CreatedDonation> {
    let Some(midtrans) = state.midtrans.as_ref() else {
        return Err(AppError::invalid(
            "payment_method",
            "unavailable",
            "Online payment is not set up on this server; choose bank transfer.",
        ));
    };
    let minutes = i64::from(state.config.donations.midtrans_expiry_minutes.max(1));
    let now = Utc::now();
    // Pending first: whatever Snap does next, the order id exists on our side.
    let donation = db::insert_donation(
        &state.db,
        &new,
        PaymentMethod::Midtrans,
        None,
        now + Duration::minutes(minutes),
    )
    .await?;
    let order_id = donation.transaction_id.to_string();
    let request = SnapRequest {
        transaction_details: TransactionDetails {
            order_id: order_id.clone(),
            gross_amount: new.amount.rupiah(),
        },
        item_details: vec![ItemDetails {
            id: "donation".to_owned(),
            price: new.amount.rupiah(),
            quantity: 1,
            name: "Donasi Siaran".to_owned(),
        }],
        customer_details: Some(CustomerDetails {
            first_name: donor.display_name().chars().take(50).collect(),
            email: donor.email.clone(),
        }),
        callbacks: Some(Callbacks {
            finish: format!("{}/donations/{}", state.config.public_base(), donation.id),
        }),
        expiry: Some(Expiry::minutes_from(now, minutes)),
    };
    match midtrans.create_transaction(&request).await {
        Ok(token) => {
            let donation =
                db::set_snap_token(&state.db, donation.id, &token.token, &token.redirect_url)
                    .await?;
            tracing::info!(donation_id = %donation.id, amount = new.amount.rupiah(), "Midtrans donation created");
            Ok(CreatedDonation {
                donation: views::one(&state.db, &donation, true).await?,
                payment: Payment::Midtrans {
                    snap_token: token.token,
                    redirect_url: token.redirect_url,
                    client_key: midtrans.client_key().to_owned(),
                    snap_js_url: midtrans.snap_js_url(),
                },
            })
        }
        Err(e) => {
            tracing::warn!(donation_id = %donation.id, cause = %e, "Midtrans did not create the transaction");
            let reason = match &e {
                MidtransError::Unreachable(_) => "Midtrans could not be reached.",
                MidtransError::Refused { .. } => "Midtrans refused the transaction.",
                MidtransError::Unexpected(_) => "Midtrans gave an unexpected answer.",
            };
            service::change(
                &state.services(),
                donation.id,
                DonationStatus::Failed,
                Source::Midtrans,
                reason,
            )
            .await?;
            Err(AppError::BadGateway {
                code: ErrorCode::PaymentProviderError,
                detail: Cow::Owned(format!(
                    "{reason} Your donation was not charged; please try again in a moment."
                )),
            })
        }
    }
}

async fn pay_by_transfer(
    state: &AppState,
    streamer_id: Uuid,
    new: NewDonation,
) -> AppResult<CreatedDonation> {
    let Some(account) = db::payout_account(&state.db, streamer_id).await? else {
        return Err(AppError::conflict(
            ErrorCode::PayoutDetailsMissing,
            "This streamer has not set up a bank account for transfers yet; donate online instead.",
        ));
    };
    let expires_at = Utc::now()
        + Duration::hours(i64::from(
            state.config.donations.bank_transfer_expiry_hours.max(1),
        ));
    let mut attempt = 0;
    let donation = loop {
        attempt += 1;
        let code = new_reference_code();
        match db::insert_donation(
            &state.db,
            &new,
            PaymentMethod::BankTransfer,
            Some((&code, &account)),
            expires_at,
        )
        .await
        {
            Ok(donation) => break donation,
            Err(e)
                if constraint(&e) == Some("donations_reference_code_key")
                    && attempt < REFERENCE_ATTEMPTS => {}
            Err(e) => return Err(e.into()),
        }
    };
    tracing::info!(donation_id = %donation.id, amount = new.amount.rupiah(), "bank transfer donation created");
    let instructions = TransferInstructions {
        bank_name: account.bank_name,
        account_number: account.account_number,
        account_holder: account.account_holder,
        amount: new.amount.rupiah(),
        reference_code: donation.reference_code.clone().unwrap_or_default(),
        expires_at,
    };
    tracing::debug!(amount = %rupiah(instructions.amount), "transfer instructions issued");
    Ok(CreatedDonation {
        donation: views::one(&state.db, &donation, true).await?,
        payment: Payment::BankTransfer(instructions),
    })
}

/// A donation with how to pay it while it is pending (for its donor).
#[derive(Debug, Serialize, ToSchema)]
pub struct DonationDetail {
    pub donation: DonationView,
    /// While pending, for the donor: how to pay (the same as when it was created).
    pub payment: Option<Payment>,
}

/// One donation, for its donor or the streamer of its stream.
///
/// Poll this after Snap's `onSuccess`: the donation is `completed` only once Midtrans' status
/// endpoint has confirmed the payment.
#[utoipa::path(get, path = "/api/donations/{id}", tag = "donations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The donation")),
    responses(
        (status = 200, description = "The donation", body = DonationDetail),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such donation, or not yours to see", body = Problem,
            content_type = "application/problem+json"),
))]
pub(super) async fn get_donation(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<Json<DonationDetail>> {
    let Some(donation) = db::find_donation(&state.db, id).await? else {
        return Err(AppError::not_found("Donation"));
    };
    let streamer_id = db::stream_owner(&state.db, donation.stream_id).await?;
    let is_donor = donation.donor_id == Some(user.id);
    if !is_donor && streamer_id != user.id && !user.is_staff {
        // Whether a donation exists is nobody else's business.
        return Err(AppError::not_found("Donation"));
    }
    let payment = if is_donor && donation.status() == DonationStatus::Pending {
        pending_payment(&state, &donation, streamer_id).await?
    } else {
        None
    };
    Ok(Json(DonationDetail {
        donation: views::one(&state.db, &donation, is_donor).await?,
        payment,
    }))
}

async fn pending_payment(
    state: &AppState,
    donation: &Donation,
    streamer_id: Uuid,
) -> AppResult<Option<Payment>> {
    if donation.is_bank_transfer() {
        // The account the donor was told when they donated; donations made before accounts
        // were kept with them fall back to the streamer's current one.
        let (bank_name, account_number, account_holder) = match (
            &donation.payout_bank_name,
            &donation.payout_account_number,
            &donation.payout_account_holder,
        ) {
            (Some(bank), Some(number), Some(holder)) => {
                (bank.clone(), number.clone(), holder.clone())
            }
            _ => match db::payout_account(&state.db, streamer_id).await? {
                Some(a) => (a.bank_name, a.account_number, a.account_holder),
                None => return Ok(None),
            },
        };
        return Ok(Some(Payment::BankTransfer(TransferInstructions {
            bank_name,
            account_number,
            account_holder,
            amount: donation.rupiah(),
            reference_code: donation.reference_code.clone().unwrap_or_default(),
            expires_at: donation.expires_at.unwrap_or(donation.created_at),
        })));
    }
    Ok(
        match (
            &state.midtrans,
            &donation.snap_token,
            &donation.snap_redirect_url,
        ) {
            (Some(midtrans), Some(token), Some(url)) => Some(Payment::Midtrans {
                snap_token: token.clone(),
                redirect_url: url.clone(),
                client_key: midtrans.client_key().to_owned(),
                snap_js_url: midtrans.snap_js_url(),
            }),
            _ => None,
        },
    )
}
