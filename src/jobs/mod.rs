//! Background jobs on Redis: the queue and its workers. Each feature declares its jobs and
//! how to run them (`donations::jobs::DonationJob`); [`Job`] only lists the features.
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

pub mod queue;
mod worker;

use serde::{Deserialize, Serialize};

use crate::donations::jobs::DonationJob;
use crate::services::Services;

pub use queue::{DeadLetter, JobQueue};
pub use worker::{run_workers, spawn_workers};

/// Everything that can be queued: each feature's own jobs. The JSON is the feature's job as it
/// is (`{"kind": "deliver_outbox", ...}`), so a feature adding a job touches only its module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Job {
    Donations(DonationJob),
}

impl Job {
    /// A short name for logs and metrics.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Donations(job) => job.kind(),
        }
    }
}

impl From<DonationJob> for Job {
    fn from(job: DonationJob) -> Self {
        Self::Donations(job)
    }
}

/// Runs one job. Errors are retried with backoff.
async fn handle(state: &Services, job: &Job) -> anyhow::Result<()> {
    match job {
        Job::Donations(job) => job.run(state).await,
    }
}
