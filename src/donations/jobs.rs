//! The donation jobs the queue runs: verify a notified order with Midtrans, reconcile what was
//! left behind, and deliver the outbox (the live alert and the emails) exactly once.

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::db::{self, NotifiedDonation, OutboxWork};
use super::emails;
use super::model::{CURRENCY, Donation, DonationStatus, Effect, public_donor_name};
use super::service::{self, Applied, Source};
use crate::live::events::{DonationReceived, EventData};
use crate::payments::StatusAnswer;
use crate::ratelimit::{Limit, RateLimiter};
use crate::services::Services;

/// Outbox rows and notifications older than this without progress are queued again.
const STUCK_AFTER: Duration = Duration::from_secs(30);
/// A Midtrans donation is asked about at most this often by reconciliation.
const RECHECK_EVERY: Duration = Duration::from_secs(5 * 60);
/// How many of each kind one reconciliation run handles (the next run takes the rest).
const BATCH: i64 = 200;
/// An outbox row that failed this often (over several requeues) is left for a person: its
/// `last_error` says why.
const GIVE_UP_AFTER_ATTEMPTS: i32 = 50;
/// Unprocessed notifications are requeued this many times, each after twice the wait of the
/// one before (30 s, 1, 2, 4, 8 min); after that the donation's own reconciliation (which asks
/// Midtrans directly) is what settles it.
const NOTIFICATION_REQUEUES: i32 = 5;
/// Status calls that notifications may cause per donation per minute; notifications beyond
/// are recorded as `throttled` (reconciliation still settles a pending donation).
const NOTIFIED_CHECKS_PER_MINUTE: u64 = 6;

/// The donation jobs: what each is and how it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DonationJob {
    /// Ask Midtrans for the verified status of a notified order and act on it.
    ProcessNotification { notification_id: Uuid },
    /// The periodic sweep: expire stale bank transfers, queue checks of old pending Midtrans
    /// donations, requeue undelivered outbox rows and unprocessed notifications.
    Reconcile,
    /// Ask Midtrans for the status of one donation (queued by the sweep).
    CheckDonation { donation_id: Uuid },
    /// Deliver one effect of a status change (the live alert or an email).
    DeliverOutbox { outbox_id: Uuid },
}

impl DonationJob {
    /// A short name for logs and metrics.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ProcessNotification { .. } => "process_notification",
            Self::Reconcile => "reconcile",
            Self::CheckDonation { .. } => "check_donation",
            Self::DeliverOutbox { .. } => "deliver_outbox",
        }
    }

    pub async fn run(&self, state: &Services) -> anyhow::Result<()> {
        match *self {
            Self::ProcessNotification { notification_id } => {
                process_notification(state, notification_id).await
            }
            Self::Reconcile => reconcile(state).await,
            Self::CheckDonation { donation_id } => check_donation(state, donation_id).await,
            Self::DeliverOutbox { outbox_id } => deliver_outbox(state, outbox_id).await,
        }
    }
}

/// Processes a stored notification: asks Midtrans for the order's verified status and acts on
/// that. Idempotent: a processed notification is skipped, and applying a status twice changes
/// nothing the second time.
pub async fn process_notification(state: &Services, notification_id: Uuid) -> anyhow::Result<()> {
    // The notification and its donation in one read; the donation is read again, locked, only
    // when Midtrans' answer is applied (the state may move during the call).
    let row = db::notified_donation(&state.db, notification_id).await?;
    let Some(NotifiedDonation {
        processed_at,
        donation,
    }) = row
    else {
        tracing::warn!(%notification_id, "notification to process no longer exists");
        return Ok(());
    };
    if processed_at.is_some() {
        return Ok(());
    }
    let donation_id = donation.id;
    // Notifications carry no proof of freshness, so however many arrive, Midtrans is asked a
    // bounded number of times: one answer covers every notification received before the call.
    let asked_at = Utc::now();
    let outcome = if notified_check_allowed(state, donation_id).await {
        verify_with_midtrans(state, &donation).await?.describe()
    } else {
        tracing::warn!(%notification_id, %donation_id, "too many notifications for one donation; not asking Midtrans again this minute");
        "throttled".to_owned()
    };
    db::settle_notifications(&state.db, notification_id, donation_id, &outcome, asked_at).await?;
    Ok(())
}

/// Whether a notification may make another status call for this donation this minute (open
/// when Redis cannot count: the calls stay bounded by the notifications stored).
async fn notified_check_allowed(state: &Services, donation_id: Uuid) -> bool {
    let key = format!("midtrans-checks:{donation_id}");
    RateLimiter::new(state.redis.clone())
        .acquire(&[(
            &key,
            Limit::new(NOTIFIED_CHECKS_PER_MINUTE, Duration::from_secs(60)),
        )])
        .await
        .is_ok()
}

/// Asks Midtrans' status endpoint about a donation and applies the answer. An order Midtrans
/// does not know (the buyer never chose a method) expires locally once past its expiry.
pub async fn verify_with_midtrans(
    state: &Services,
    donation: &Donation,
) -> anyhow::Result<Applied> {
    let midtrans = state
        .midtrans
        .as_ref()
        .context("Midtrans is not configured (MIDTRANS_SERVER_KEY)")?;
    let donation_id = donation.id;
    // What Midtrans can still move: a payment (pending, or expired here before it settled
    // there) and the refunds of a completed one. The rest is settled for good.
    if !matches!(
        donation.status(),
        DonationStatus::Pending
            | DonationStatus::Completed
            | DonationStatus::PartiallyRefunded
            | DonationStatus::Expired
    ) {
        return Ok(Applied::Unchanged);
    }
    let answer = midtrans
        .status(&donation.transaction_id.to_string())
        .await
        .context("asking Midtrans for the transaction status")?;
    match answer {
        StatusAnswer::Found(status) => {
            Ok(service::apply_verified_status(state, donation_id, &status).await?)
        }
        StatusAnswer::NotFound => {
            db::mark_checked(&state.db, donation_id).await?;
            if donation.is_overdue(Utc::now()) {
                let expired = service::change(
                    state,
                    donation_id,
                    DonationStatus::Expired,
                    Source::Expiry,
                    "No payment method was chosen in time.",
                )
                .await?;
                if expired.is_some() {
                    return Ok(Applied::Changed(DonationStatus::Expired));
                }
            }
            Ok(Applied::Unchanged)
        }
    }
}

/// The periodic sweep. Each part is independent; one failing does not stop the others.
pub async fn reconcile(state: &Services) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    match service::expire_overdue_bank_transfers(state).await {
        Ok(expired) if !expired.is_empty() => {
            tracing::info!(count = expired.len(), "expired overdue bank transfers");
        }
        Ok(_) => {}
        Err(e) => failures.push(format!("expiring bank transfers: {e}")),
    }
    if state.midtrans.is_some()
        && let Err(e) = reconcile_midtrans(state).await
    {
        failures.push(format!("reconciling Midtrans: {e:#}"));
    }
    if let Err(e) = requeue_stuck(state).await {
        failures.push(format!("requeueing stuck work: {e:#}"));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(failures.join("; "))
    }
}

/// Midtrans donations pending longer than `reconcile_after` (a lost notification) or past
/// their expiry: queue a check of each. Marking them checked in the same statement keeps two
/// sweeps (or a slow queue) from asking twice.
async fn reconcile_midtrans(state: &Services) -> anyhow::Result<()> {
    let after = Duration::from_secs(state.config.donations.reconcile_after_secs);
    let now = Utc::now();
    let ids =
        db::claim_midtrans_checks(&state.db, now - after, now, now - RECHECK_EVERY, BATCH).await?;
    for donation_id in ids {
        state
            .jobs
            .enqueue(DonationJob::CheckDonation { donation_id })
            .await?;
    }
    Ok(())
}

/// One reconciliation check: what does Midtrans say about this donation?
pub async fn check_donation(state: &Services, donation_id: Uuid) -> anyhow::Result<()> {
    let Some(donation) = db::find_donation(&state.db, donation_id).await? else {
        return Ok(());
    };
    let outcome = verify_with_midtrans(state, &donation).await?;
    if outcome != Applied::Unchanged {
        tracing::info!(%donation_id, outcome = outcome.describe(), "reconciled with Midtrans");
    }
    Ok(())
}

/// Outbox rows and notifications whose job was lost (Redis down when queuing, Redis data lost).
async fn requeue_stuck(state: &Services) -> anyhow::Result<()> {
    let before = Utc::now() - STUCK_AFTER;
    let outbox = db::stuck_outbox(&state.db, before, BATCH, GIVE_UP_AFTER_ATTEMPTS).await?;
    for outbox_id in outbox {
        state
            .jobs
            .enqueue(DonationJob::DeliverOutbox { outbox_id })
            .await?;
    }
    // Each requeue waits twice as long as the one before, and there are only so many.
    let notifications = db::requeue_notifications(
        &state.db,
        STUCK_AFTER.as_secs_f64(),
        BATCH,
        NOTIFICATION_REQUEUES,
    )
    .await?;
    for notification_id in notifications {
        state
            .jobs
            .enqueue(DonationJob::ProcessNotification { notification_id })
            .await?;
    }
    Ok(())
}

/// Delivers one outbox row, exactly once as far as PostgreSQL can tell: never by two workers at
/// once, and marked delivered only after its effect happened (a worker that dies in between
/// leaves it for the next attempt).
///
/// - The live alert is recorded in the stream's event log in the transaction that marks the
///   row delivered, with the row locked (`NOWAIT`: another worker holding it makes this attempt
///   fail and retry later). No network I/O happens inside; sockets hear of it after the commit.
/// - An email is sent with no transaction open and no row locked: a session advisory lock on a
///   connection of its own (closed afterwards, so a cancelled job cannot leave the lock on a
///   pooled connection) keeps a second worker from sending it at the same time.
pub async fn deliver_outbox(state: &Services, outbox_id: Uuid) -> anyhow::Result<()> {
    let Some(work) = db::outbox_work(&state.db, outbox_id).await? else {
        return Ok(());
    };
    if work.delivered_at.is_some() {
        return Ok(());
    }
    if work.kind == Effect::EventReceived {
        return deliver_alert(state, outbox_id, &work).await;
    }
    let mut conn = state.db.acquire().await?;
    conn.close_on_drop();
    if !db::try_lock_outbox_email(&mut *conn, outbox_id).await? {
        anyhow::bail!("another worker is sending this email");
    }
    // Under the lock: a worker that held it before may have sent it meanwhile.
    if db::outbox_delivered_at(&mut *conn, outbox_id)
        .await?
        .is_some()
    {
        return Ok(());
    }
    let sent = send_email(state, outbox_id, &work).await;
    match &sent {
        Ok(()) => db::mark_outbox_delivered(&mut *conn, outbox_id).await?,
        Err(e) => db::record_outbox_failure(&mut *conn, outbox_id, &format!("{e:#}")).await?,
    }
    // The connection closes when dropped, and its advisory lock with it.
    sent
}

/// The live alert: recorded in the stream's event log by the transaction that marks the row
/// delivered, so it exists exactly once whatever happens to this worker.
async fn deliver_alert(state: &Services, outbox_id: Uuid, work: &OutboxWork) -> anyhow::Result<()> {
    let mut tx = state.db.begin().await?;
    let delivered = db::lock_outbox_nowait(&mut *tx, outbox_id)
        .await
        .context("locking the outbox row")?;
    if !matches!(delivered, Some(None)) {
        return Ok(());
    }
    let donation = &work.donation;
    let alert = EventData::DonationReceived(DonationReceived {
        donation_id: donation.id,
        amount: donation.rupiah(),
        currency: CURRENCY.to_owned(),
        message: donation.message.clone(),
        donor_name: public_name(work),
        payment_method: donation.payment_method,
    });
    db::mark_outbox_delivered(&mut *tx, outbox_id).await?;
    let recorded = state
        .events
        .record(&mut tx, donation.stream_id, alert)
        .await
        .context("recording donation.received")?;
    tx.commit().await?;
    tracing::info!(%outbox_id, event_id = recorded.envelope.id, "donation.received published");
    // Sockets hear of it after the commit (and catch up from the log if this is lost).
    state.events.announce(&recorded).await;
    Ok(())
}

/// The donor's name as the stream shows it.
fn public_name(work: &OutboxWork) -> String {
    public_donor_name(
        work.parties.donor_name.as_deref(),
        work.donation.is_anonymous,
    )
}

/// The people and stream a donation involves, for events and emails.
#[derive(Debug, Clone)]
pub struct Parties {
    pub stream_title: String,
    pub streamer_name: String,
    pub streamer_email: String,
    pub donor_name: Option<String>,
    pub donor_email: Option<String>,
}

/// Sends one outbox email with the outbox row's own `Message-ID`: one sent again because its
/// worker died before marking it sent is the same message (mail clients and servers show one).
async fn send_email(state: &Services, outbox_id: Uuid, work: &OutboxWork) -> anyhow::Result<()> {
    let (donation, parties) = (&work.donation, &work.parties);
    let mut email = match work.kind {
        Effect::EventReceived => anyhow::bail!("the live alert is not an email"),
        Effect::EmailStreamerReceived => {
            emails::streamer_received(state, donation, parties, &public_name(work))
        }
        Effect::EmailDonorReceipt | Effect::EmailDonorRejected | Effect::EmailDonorExpired => {
            let (Some(name), Some(address)) = (&parties.donor_name, &parties.donor_email) else {
                // The donor deleted their account: nobody to write to.
                return Ok(());
            };
            if work.kind == Effect::EmailDonorReceipt {
                emails::donor_receipt(state, donation, parties, name, address)
            } else {
                emails::donor_transfer_ended(state, donation, parties, name, address)
            }
        }
    };
    email.message_id = Some(message_id(outbox_id));
    state.mailer.send(&email).await
}

/// The `Message-ID` of an outbox row's email (RFC 5322: unique, `<left@right>`).
fn message_id(outbox_id: Uuid) -> String {
    format!("<{outbox_id}@outbox.siaran>")
}
