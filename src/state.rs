//! The state every handler and background task shares. Cheap to clone: everything inside is a
//! handle (`Arc`, pool, connection manager).

use std::sync::Arc;

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
use crate::live::Live;
use crate::live::events::Events;
use crate::mail::Mailer;
use crate::payments::Midtrans;

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
