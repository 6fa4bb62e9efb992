//! The services every Siaran process has, a server's or a worker's: storage, the job queue,
//! live events, mail and the payment gateway. Jobs and the donation service take these and
//! nothing else, so this module imports no feature that serves HTTP.

use std::sync::Arc;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::jobs::queue::JobQueue;
use crate::kv::Redis;
use crate::live::events::Events;
use crate::mail::Mailer;
use crate::payments::Midtrans;

/// What background jobs (and the handlers that start them) need, in any process.
#[derive(Clone, Debug)]
pub struct Services {
    pub config: Arc<Config>,
    pub db: PgPool,
    pub redis: Redis,
    /// Publishes live events (comments, donations, stream state) to every server process.
    pub events: Events,
    /// The background job queue (Redis).
    pub jobs: JobQueue,
    /// Outgoing email (SMTP, or a folder in development).
    pub mailer: Mailer,
    /// The Midtrans merchant; `None` without `MIDTRANS_SERVER_KEY` (online payment disabled).
    pub midtrans: Option<Midtrans>,
    /// Cancelled when the process shuts down; long-lived tasks watch it.
    pub shutdown: CancellationToken,
    /// Background tasks the process waits for on shutdown.
    pub tasks: TaskTracker,
}
