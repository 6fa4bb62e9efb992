//! What handlers and background work share. Cheap to clone: everything inside is a handle
//! (`Arc`, pool, connection manager).
//!
//! - [`Services`] (in `services.rs`, which knows nothing of serving): what every process has —
//!   storage, the job queue, live events, mail, the payment gateway. `siaran worker` is built
//!   with these alone.
//! - [`AppState`]: a serving process — the services plus sessions, sockets, comments and the
//!   RTMP ingest. Handlers that need only the services take them as `State<Services>`.

use std::sync::Arc;

use axum::extract::FromRef;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::jwt::JwtKeys;
use crate::auth::password::Hasher;
use crate::config::Config;
use crate::http::proxy::TrustedProxies;
use crate::jobs::JobQueue;
use crate::kv::Redis;
use crate::live::events::Events;
use crate::live::runtime::Live;
use crate::mail::Mailer;
use crate::payments::Midtrans;
pub use crate::services::Services;

/// A serving process's state: the [`Services`] and what only serving needs.
#[derive(Clone, Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: PgPool,
    pub redis: Redis,
    pub jwt: Arc<JwtKeys>,
    /// The process-wide bound on concurrent password hashing.
    pub passwords: Hasher,
    /// The proxies whose `X-Forwarded-For` is believed (`SIARAN_TRUSTED_PROXIES`).
    pub proxies: Arc<TrustedProxies>,
    /// Publishes live events (comments, donations, stream state) to every server process.
    pub events: Events,
    /// This process's sockets, hubs and Redis subscription for live events.
    pub live: Live,
    /// Stores comments in per-stream batches.
    pub comments: crate::comments::writer::Writer,
    /// The RTMP ingest of this process: stop a stream's publisher, find its HLS.
    pub ingest: media::IngestHandle,
    /// The background job queue (Redis).
    pub jobs: JobQueue,
    /// Outgoing email (SMTP, or a folder in development).
    pub mailer: Mailer,
    /// The Midtrans merchant; `None` without `MIDTRANS_SERVER_KEY` (online payment disabled).
    pub midtrans: Option<Midtrans>,
    pub metrics: PrometheusHandle,
    /// Cancelled when the server shuts down; long-lived tasks and sockets watch it.
    pub shutdown: CancellationToken,
    /// Background tasks the server waits for on shutdown.
    pub tasks: TaskTracker,
}

impl AppState {
    /// The process-wide services, for code that needs nothing else.
    #[must_use]
    pub fn services(&self) -> Services {
        Services {
            config: Arc::clone(&self.config),
            db: self.db.clone(),
            redis: self.redis.clone(),
            events: self.events.clone(),
            jobs: self.jobs.clone(),
            mailer: self.mailer.clone(),
            midtrans: self.midtrans.clone(),
            shutdown: self.shutdown.clone(),
            tasks: self.tasks.clone(),
        }
    }
}

impl FromRef<AppState> for Services {
    fn from_ref(state: &AppState) -> Self {
        state.services()
    }
}
