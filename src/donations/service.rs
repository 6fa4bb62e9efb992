//! The one way a donation's status changes, whoever asks (Midtrans' verified status, the
//! streamer, expiry): lock the row, check the state machine, write the new status, the
//! transition and its effects (outbox rows) in one transaction, then queue the effects.
//!
//! The row lock serialises concurrent changes (two clicks on "confirm", a notification and the
//! reconciler at once): the second one sees the first one's result and changes nothing.
//! `UNIQUE (donation_id, kind)` on the outbox makes every effect exist at most once.

use std::str::FromStr;

use chrono::Utc;
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

use super::db;
use super::jobs::DonationJob;
use super::model::{CURRENCY, Donation, DonationStatus, Effect, PaymentMethod};
use crate::payments::midtrans::{TransactionStatus, Verdict};
use crate::services::Services;

/// Who changed a status (kept in `donation_transitions.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Midtrans,
    Streamer,
    Expiry,
}

impl Source {
    /// Who may make a move the state machine allows: money that arrived after the expiry is
    /// recorded by the streamer (bank transfers) or verified by Midtrans (its own payments);
    /// refunds come from Midtrans only.
    fn may_move(self, donation: &Donation, from: DonationStatus, to: DonationStatus) -> bool {
        use DonationStatus::{Completed, Expired, PartiallyRefunded, Refunded};
        match (from, to) {
            (Expired, Completed) => match self {
                Self::Streamer => donation.is_bank_transfer(),
                Self::Midtrans => !donation.is_bank_transfer(),
                Self::Expiry => false,
            },
            (_, Refunded | PartiallyRefunded) => self == Self::Midtrans,
            _ => true,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Midtrans => "midtrans",
            Self::Streamer => "streamer",
            Self::Expiry => "expiry",
        }
    }
}

/// Loads a donation and locks it until the transaction ends.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Donation>> {
    db::lock_donation(conn, id).await
}

/// Moves a locked donation to `to` if the state machine allows it. Returns the updated row and
/// the outbox rows its effects were written to, or `None` when nothing changed.
pub async fn move_to(
    conn: &mut PgConnection,
    donation: &Donation,
    to: DonationStatus,
    source: Source,
    reason: &str,
) -> sqlx::Result<Option<(Donation, Vec<Uuid>)>> {
    let from = donation.status();
    if !from.can_become(to) || !source.may_move(donation, from, to) {
        return Ok(None);
    }
    let updated = db::set_status(&mut *conn, donation.id, to, reason).await?;
    db::insert_transition(&mut *conn, donation.id, from, to, source.as_str(), reason).await?;
    let outbox = write_effects(conn, &updated, to).await?;
    tracing::info!(donation_id = %donation.id, from = from.as_str(), to = to.as_str(), source = source.as_str(), "donation status changed");
    Ok(Some((updated, outbox)))
}

/// The effects of arriving in `to`, as outbox rows (at most one of each kind per donation).
async fn write_effects(
    conn: &mut PgConnection,
    donation: &Donation,
    to: DonationStatus,
) -> sqlx::Result<Vec<Uuid>> {
    let has_donor = donation.donor_id.is_some();
    let kinds: &[Effect] = match to {
        DonationStatus::Completed if has_donor => &[
            Effect::EventReceived,
            Effect::EmailStreamerReceived,
            Effect::EmailDonorReceipt,
        ],
        DonationStatus::Completed => &[Effect::EventReceived, Effect::EmailStreamerReceived],
        DonationStatus::Rejected if has_donor && donation.is_bank_transfer() => {
            &[Effect::EmailDonorRejected]
        }
        DonationStatus::Expired if has_donor && donation.is_bank_transfer() => {
            &[Effect::EmailDonorExpired]
        }
        _ => &[],
    };
    let mut ids = Vec::with_capacity(kinds.len());
    for kind in kinds {
        let id = db::insert_outbox(&mut *conn, donation.id, *kind).await?;
        ids.extend(id);
    }
    Ok(ids)
}

/// Queues delivery of committed outbox rows. If Redis is down the rows wait in PostgreSQL and
/// reconciliation queues them once it is back.
pub async fn dispatch(state: &Services, outbox: &[Uuid]) {
    for id in outbox {
        if let Err(e) = state
            .jobs
            .enqueue(DonationJob::DeliverOutbox { outbox_id: *id })
            .await
        {
            tracing::warn!(outbox_id = %id, cause = %e, "could not queue an outbox delivery; reconciliation will");
        }
    }
}

/// Locks, moves and commits in one go; queues the effects. `None` when nothing changed.
pub async fn change(
    state: &Services,
    id: Uuid,
    to: DonationStatus,
    source: Source,
    reason: &str,
) -> sqlx::Result<Option<Donation>> {
    let mut tx = state.db.begin().await?;
    let Some(donation) = lock(&mut tx, id).await? else {
        return Ok(None);
    };
    let changed = move_to(&mut tx, &donation, to, source, reason).await?;
    tx.commit().await?;
    Ok(match changed {
        Some((donation, outbox)) => {
            dispatch(state, &outbox).await;
            Some(donation)
        }
        None => None,
    })
}

/// What applying a verified status did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Changed(DonationStatus),
    /// The donation already was there, or the status asks for nothing.
    Unchanged,
    /// Midtrans holds a different amount than we stored: flagged, not completed.
    AmountMismatch,
    /// Midtrans reports a currency other than IDR: flagged, not completed.
    CurrencyMismatch,
}

impl Applied {
    #[must_use]
    pub fn describe(self) -> String {
        match self {
            Self::Changed(to) => to.as_str().to_owned(),
            Self::Unchanged => "unchanged".to_owned(),
            Self::AmountMismatch => "amount_mismatch".to_owned(),
            Self::CurrencyMismatch => "currency_mismatch".to_owned(),
        }
    }
}

/// Acts on a status obtained from Midtrans' status endpoint (never on a notification's body).
pub async fn apply_verified_status(
    state: &Services,
    donation_id: Uuid,
    status: &TransactionStatus,
) -> sqlx::Result<Applied> {
    let mut tx = state.db.begin().await?;
    let Some(donation) = lock(&mut tx, donation_id).await? else {
        return Ok(Applied::Unchanged);
    };
    let verdict = status.verdict();
    let verified_amount = Decimal::from_str(status.gross_amount.trim()).ok();
    let mismatch = verified_amount.is_some_and(|a| a != donation.amount)
        || (verdict == Verdict::Paid && verified_amount.is_none());
    // Every donation is in rupiah; an answer in anything else is not ours to interpret.
    let foreign_currency = status
        .currency
        .as_deref()
        .is_some_and(|c| !c.trim().eq_ignore_ascii_case(CURRENCY));
    let refunded = status
        .refund_amount
        .as_deref()
        .and_then(|a| Decimal::from_str(a.trim()).ok())
        .filter(|a| *a >= Decimal::ZERO)
        .map(|a| a.min(donation.amount).trunc());
    db::record_verified_status(
        &mut *tx,
        donation.id,
        status,
        mismatch,
        foreign_currency,
        refunded,
    )
    .await?;
    if mismatch {
        tracing::warn!(
            donation_id = %donation.id,
            stored = %donation.amount,
            verified = %status.gross_amount,
            transaction_status = %status.transaction_status,
            "Midtrans reports a different amount; donation flagged and not completed"
        );
    }
    if foreign_currency {
        tracing::warn!(
            donation_id = %donation.id,
            currency = status.currency.as_deref().unwrap_or_default(),
            transaction_status = %status.transaction_status,
            "Midtrans reports a currency other than IDR; donation flagged and not changed"
        );
    }
    let target = match verdict {
        _ if foreign_currency => None,
        Verdict::Paid if mismatch => None,
        Verdict::Paid => Some(DonationStatus::Completed),
        Verdict::Failed => Some(DonationStatus::Failed),
        Verdict::Expired => Some(DonationStatus::Expired),
        Verdict::Refunded => Some(DonationStatus::Refunded),
        Verdict::PartlyRefunded => Some(DonationStatus::PartiallyRefunded),
        Verdict::Held | Verdict::Waiting | Verdict::Ignored => None,
    };
    let reason = match verdict {
        Verdict::Failed | Verdict::Expired | Verdict::Refunded | Verdict::PartlyRefunded => {
            format!("Midtrans: {}", status.transaction_status)
        }
        _ => String::new(),
    };
    let changed = match target {
        Some(to) => move_to(&mut tx, &donation, to, Source::Midtrans, &reason).await?,
        None => None,
    };
    tx.commit().await?;
    Ok(match changed {
        Some((updated, outbox)) => {
            dispatch(state, &outbox).await;
            Applied::Changed(updated.status())
        }
        None if foreign_currency => Applied::CurrencyMismatch,
        None if mismatch => Applied::AmountMismatch,
        None => Applied::Unchanged,
    })
}

/// Ends the pending bank transfers to a streamer whose account was deactivated: nobody will
/// confirm them, so their donors are told (the expiry email) not to pay.
pub async fn expire_pending_transfers_to(state: &Services, streamer_id: Uuid) -> sqlx::Result<()> {
    let pending = db::pending_transfers_to(&state.db, streamer_id).await?;
    for id in pending {
        change(
            state,
            id,
            DonationStatus::Expired,
            Source::Expiry,
            "The streamer's account was deactivated.",
        )
        .await?;
    }
    Ok(())
}

/// Pending bank transfers past their expiry, and the ids of those just expired.
pub async fn expire_overdue_bank_transfers(state: &Services) -> sqlx::Result<Vec<Uuid>> {
    let overdue = db::overdue(&state.db, PaymentMethod::BankTransfer, Utc::now()).await?;
    let mut expired = Vec::new();
    for id in overdue {
        if change(
            state,
            id,
            DonationStatus::Expired,
            Source::Expiry,
            "Not confirmed in time.",
        )
        .await?
        .is_some()
        {
            expired.push(id);
        }
    }
    Ok(expired)
}
