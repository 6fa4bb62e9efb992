//! Background jobs on Redis: the queue, its workers, and the catalogue of jobs.
//!
//! **Why Redis Streams and not a crate.** apalis (the maintained Rust job framework) brings its
//! own Redis client version next to ours, its own key layout and its own runtime model, to give
//! us what one stream with a consumer group already does in a few hundred lines we control:
//!
//! - *At-least-once.* `XREADGROUP` hands each job to exactly one worker and keeps it in the
//!   group's pending list until the worker `XACK`s it. A worker that dies (SIGKILL, OOM, power)
//!   leaves it pending; after `claim_idle` another worker takes it over with `XAUTOCLAIM`. A job
//!   is given half of `claim_idle` to finish, so a slow job is never taken over while it runs.
//! - *Retries with exponential backoff.* A failed job is acknowledged and, in the same `MULTI`,
//!   added to a sorted set scored by when it is due (`backoff × 2^attempt`, jittered, capped).
//!   Every worker promotes due jobs back into the stream with one Lua script, atomically.
//! - *Dead letters.* After `max_attempts` (or a job that cannot even be decoded) the job and its
//!   last error are pushed on a list, `jobs:dead`, for a person to look at.
//!
//! Handlers must be idempotent — at-least-once means a job can run twice — and they are: each
//! checks PostgreSQL (the only source of truth) before acting. Losing Redis loses queued work,
//! never money: reconciliation finds unprocessed notifications and undelivered outbox rows in
//! PostgreSQL and queues them again.
//!
//! `siaran serve` runs [`JobsConfig::workers`](crate::config::JobsConfig) workers in-process;
//! `siaran worker` runs them alone, for scaling out.

mod queue;
mod worker;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::state::AppState;

pub use queue::{DeadLetter, JobQueue};
pub use worker::{run_workers, spawn_workers};

/// Everything that can be queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
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

impl Job {
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
}

/// Runs one job. Errors are retried with backoff.
async fn handle(state: &AppState, job: &Job) -> anyhow::Result<()> {
    match job {
        Job::ProcessNotification { notification_id } => {
            crate::donations::jobs::process_notification(state, *notification_id).await
        }
        Job::Reconcile => crate::donations::jobs::reconcile(state).await,
        Job::CheckDonation { donation_id } => {
            crate::donations::jobs::check_donation(state, *donation_id).await
        }
        Job::DeliverOutbox { outbox_id } => {
            crate::donations::jobs::deliver_outbox(state, *outbox_id).await
        }
    }
}
